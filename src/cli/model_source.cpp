#include "cli/model_source.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "formats/gguf_model.h"
#include "formats/safetensors.h"
#include "util/error.h"

extern "C" {
extern const char pensieve_demo_weights_begin[], pensieve_demo_weights_end[];
extern const char pensieve_demo_config_begin[], pensieve_demo_config_end[];
extern const char pensieve_demo_generation_config_begin[], pensieve_demo_generation_config_end[];
extern const char pensieve_demo_tokenizer_begin[], pensieve_demo_tokenizer_end[];
extern const char pensieve_demo_tokenizer_config_begin[], pensieve_demo_tokenizer_config_end[];
}

namespace pensieve::cli {
namespace {

namespace fs = std::filesystem;

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string g_demo_dir;

void RemoveDemoDir() {
  std::error_code ec;
  if (!g_demo_dir.empty()) fs::remove_all(g_demo_dir, ec);
}

// Writes the demo model's text files to a fresh private directory (once per process).
const std::string& DemoDir() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/pensieve-demo-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw Error("cannot create a temporary directory " + pattern + " for the demo model");
    g_demo_dir = pattern;
    std::atexit(RemoveDemoDir);
    struct File {
      const char* name;
      const char* begin;
      const char* end;
    };
    for (const File& f : {File{"config.json", pensieve_demo_config_begin, pensieve_demo_config_end},
                          File{"generation_config.json", pensieve_demo_generation_config_begin,
                               pensieve_demo_generation_config_end},
                          File{"tokenizer.json", pensieve_demo_tokenizer_begin, pensieve_demo_tokenizer_end},
                          File{"tokenizer_config.json", pensieve_demo_tokenizer_config_begin,
                               pensieve_demo_tokenizer_config_end}}) {
      std::string path = g_demo_dir + "/" + f.name;
      std::ofstream out(path, std::ios::binary);
      out.write(f.begin, f.end - f.begin);
      if (!out.flush()) throw Error("cannot write " + path + " (demo model)");
    }
  });
  return g_demo_dir;
}

}  // namespace

ModelSource ResolveModelSource(const std::string& model_arg) {
  if (model_arg.empty() || model_arg == "demo") return {DemoDir(), kDemoModelName, true};
  struct stat st;
  if (::stat(model_arg.c_str(), &st) != 0) throw Error(model_arg + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) {
    if (S_ISREG(st.st_mode) && IsGgufFile(model_arg)) {  // weights, config, tokenizer and template in one file
      std::string name = BaseName(model_arg);
      if (name.size() > 5 && name.ends_with(".gguf")) name.resize(name.size() - 5);
      return {model_arg, name, false};
    }
    throw Error(model_arg + ": not a model directory (expected a folder with config.json, tokenizer.json and " +
                "model.safetensors or its shards) nor a GGUF file");
  }
  return {model_arg, BaseName(model_arg), false};
}

std::unique_ptr<model::Model> LoadModel(const ModelSource& source, backend::Backend& backend,
                                        const model::LoadOptions& opts) {
  if (!source.embedded) return model::Model::Load(source.dir, backend, opts);
  TensorStore store = TensorStore::FromMemory(
      "<built-in demo model>/model.safetensors", reinterpret_cast<const std::byte*>(pensieve_demo_weights_begin),
      static_cast<size_t>(pensieve_demo_weights_end - pensieve_demo_weights_begin));
  return model::Model::Load(source.dir, std::move(store), backend, opts);
}

}  // namespace pensieve::cli

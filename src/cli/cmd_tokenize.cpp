// `pensieve tokenize` and `pensieve detokenize`: thin wrappers over LoadTokenizer / Encode / Decode, plus a
// single-threaded throughput mode (--bench) for bench/tokenizer_bench.sh.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file.h"

namespace pensieve::cli {
namespace {

std::string ReadExact(const std::string& path) {
  try {
    return ReadRegularFile(path);
  } catch (const Error& e) {
    throw Error(std::string("--file: ") + e.what());
  }
}

struct TokenizeArgs {
  std::string model, text, file;
  bool no_add_special = false, no_parse_special = false;
  double bench_seconds = 0;
};

void RunBench(const Tokenizer& tok, const std::string& text, const TokenizeArgs& a) {
  // Warm-up pass (fills the BPE word cache as a long-running server would have it), then timed passes.
  size_t n_tokens = tok.Encode(text, !a.no_add_special, !a.no_parse_special).size();
  size_t bytes = 0, passes = 0;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < a.bench_seconds || passes == 0) {
    n_tokens = tok.Encode(text, !a.no_add_special, !a.no_parse_special).size();
    bytes += text.size();
    ++passes;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  std::printf("bytes=%zu tokens=%zu passes=%zu seconds=%.3f MB/s=%.2f tokens/s=%.0f\n", text.size(), n_tokens,
              passes, elapsed, bytes / elapsed / 1e6, static_cast<double>(n_tokens) * passes / elapsed);
}

}  // namespace

void RegisterTokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text, space-separated on one line");
  cmd->add_option("--model", a->model, "HF model directory, tokenizer.json (or its directory), or .gguf file")
      ->required();
  cmd->add_flag("--no-add-special", a->no_add_special, "Do not add BOS/EOS (add_special_tokens=False)");
  cmd->add_flag("--no-parse-special", a->no_parse_special, "Treat special-token strings as plain text");
  auto* text_opt = cmd->add_option("text", a->text, "Text to tokenize");
  auto* file_opt = cmd->add_option("--file", a->file, "Read the exact bytes of this file instead");
  text_opt->excludes(file_opt);
  cmd->add_option("--bench", a->bench_seconds,
                  "Instead of printing ids, encode repeatedly for this many seconds and print MB/s");
  cmd->callback([a, text_opt, file_opt] {
    if (!*text_opt && !*file_opt) throw Error("tokenize: give TEXT or --file F");
    std::string text = *file_opt ? ReadExact(a->file) : a->text;
    auto tok = LoadTokenizer(a->model);
    if (a->bench_seconds > 0) {
      RunBench(*tok, text, *a);
      return;
    }
    std::vector<int32_t> ids = tok->Encode(text, !a->no_add_special, !a->no_parse_special);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) line += ' ';
      line += std::to_string(ids[i]);
    }
    std::printf("%s\n", line.c_str());
  });
}

void RegisterDetokenize(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  auto ids = std::make_shared<std::vector<int64_t>>();
  auto skip = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("detokenize", "Print the text of token ids");
  cmd->add_option("--model", *model, "HF model directory, tokenizer.json (or its directory), or .gguf file")
      ->required();
  cmd->add_flag("--skip-special", *skip, "Leave out special tokens");
  cmd->add_option("ids", *ids, "Token ids")->required();
  cmd->callback([model, ids, skip] {
    auto tok = LoadTokenizer(*model);
    std::vector<int32_t> v;
    for (int64_t id : *ids) {
      if (id < 0 || id >= tok->vocab_size())
        throw Error("detokenize: id " + std::to_string(id) + " is outside the vocabulary (size " +
                    std::to_string(tok->vocab_size()) + ")");
      v.push_back(static_cast<int32_t>(id));
    }
    std::string text = tok->Decode(v, *skip);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
  });
}

}  // namespace pensieve::cli

// pensieve info PATH: what a model directory holds and what it needs to run.
#include <cstdio>
#include <filesystem>
#include <map>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "cli/commands.h"
#include "model/model.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/model_config.h"
#include "formats/random_model.h"
#include "formats/safetensors.h"
#include "util/error.h"

namespace pensieve::cli {
namespace {

std::string Human(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

std::string Count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.3f B", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.3f M", n / 1e6);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

struct InfoOptions {
  std::string path;
  int64_t ctx = 0;
  bool json = false;
};

void RunInfo(const InfoOptions& opt) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(opt.path, ec)) throw Error(opt.path + ": no such file or directory");
  const bool is_dir = fs::is_directory(opt.path, ec);
  const bool gguf = !is_dir && IsGgufFile(opt.path);
  if (!is_dir && !gguf && !opt.path.ends_with(".safetensors") && !opt.path.ends_with(".index.json")) {
    throw Error(opt.path + ": not a model directory (expected a folder with config.json and model.safetensors, " +
                "a .safetensors file inside one, or a GGUF file)");
  }
  // A GGUF file: its tensors as stored (ggml types), beside the store it is converted into.
  std::map<std::string, int> gguf_types;
  uint64_t gguf_bytes = 0;
  if (gguf) {
    for (const auto& f : OpenGgufParts(opt.path)) {  // every part of a split file
      for (const GgufTensorInfo& t : f->tensors()) gguf_types[GgmlTypeName(t.ggml_type)]++;
      gguf_bytes += f->bytes().size();
    }
  }
  Checkpoint ck = gguf ? LoadGgufCheckpoint(opt.path)
                       : Checkpoint{LoadModelConfig(is_dir ? opt.path : fs::path(opt.path).parent_path().string()),
                                    TensorStore::Open(opt.path)};
  const ModelConfig& c = ck.config;
  const TensorStore& store = ck.store;

  // Parameters: quantized modules count their logical [rows, cols]; scales/biases are storage, not parameters.
  double params = 0;
  std::map<std::string, int> dtype_counts;
  int quantized_modules = 0;
  for (const std::string& name : store.Names()) {
    const TensorView& t = store.Get(name);
    dtype_counts[std::string(DTypeName(t.dtype))]++;
    auto module_of = [&](const char* suffix) -> std::string {
      return name.ends_with(suffix) ? name.substr(0, name.size() - std::strlen(suffix)) : std::string();
    };
    std::string m = module_of(".weight");
    if (!m.empty() && t.dtype == DType::kU32 && store.Has(m + ".scales")) {
      const TensorView& s = store.Get(m + ".scales");
      QuantSpec spec = c.quantization ? c.quantization->ForModule(m) : QuantSpec{};
      if (spec.group_size == 0) throw Error(name + ": quantized weight but config.json has no quantization");
      params += static_cast<double>(t.shape.at(0)) * static_cast<double>(s.dim(-1)) * spec.group_size;
      ++quantized_modules;
      continue;
    }
    std::string ms = module_of(".scales"), mb = module_of(".biases");
    if ((!ms.empty() && store.Has(ms + ".weight")) || (!mb.empty() && store.Has(mb + ".weight"))) continue;
    params += static_cast<double>(t.numel());
  }
  std::vector<std::string> missing;
  for (const TensorSpec& t : HfTensorList(c))
    if (!store.Has(t.name)) missing.push_back(t.name);

  const int64_t ctx = opt.ctx > 0 ? opt.ctx : std::min<int64_t>(c.max_position_embeddings, 4096);
  const double kv_per_token_layer = 2.0 * c.num_key_value_heads * c.head_dim * 2;  // K and V, 16-bit
  const double kv_per_token = kv_per_token_layer * c.num_hidden_layers;
  const double weights = static_cast<double>(gguf ? gguf_bytes : store.FileBytes());
  const double total = weights + kv_per_token * ctx;

  // The GPU, and whether the model fits it at this context (weights, KV pool, activations, workspace).
  const backend::GpuReport gpu = backend::ReportGpu();
  model::MemoryUse need;
  if (gpu.usable) {
    auto be = backend::MakeBackend({"cuda", 0, 0});
    model::LoadOptions lo;
    lo.max_context = ctx;
    lo.kv_budget_bytes = static_cast<int64_t>(kv_per_token * (ctx + 16));
    need = model::Model::Plan(opt.path, *be, lo);
  }

  if (opt.json) {
    nlohmann::json j = {
        {"path", opt.path}, {"architecture", c.architecture}, {"model_type", c.model_type},
        {"hidden_size", c.hidden_size}, {"num_hidden_layers", c.num_hidden_layers},
        {"num_attention_heads", c.num_attention_heads}, {"num_key_value_heads", c.num_key_value_heads},
        {"head_dim", c.head_dim}, {"intermediate_size", c.intermediate_size}, {"vocab_size", c.vocab_size},
        {"max_position_embeddings", c.max_position_embeddings}, {"rope_type", RopeTypeName(c.rope_scaling.type)},
        {"rope_theta", c.rope_theta}, {"rotary_dim", c.rotary_dim}, {"tie_word_embeddings", c.tie_word_embeddings},
        {"dtype", DTypeName(c.dtype)}, {"parameters", params}, {"tensors", store.size()},
        {"files", store.Files()}, {"file_bytes", store.FileBytes()}, {"tensor_bytes", store.TotalBytes()},
        {"kv_bytes_per_token", kv_per_token}, {"kv_bytes_per_token_per_layer", kv_per_token_layer},
        {"ctx", ctx}, {"memory_bytes", total}, {"missing_tensors", missing},
        {"gpu", {{"usable", gpu.usable}, {"description", gpu.description}, {"free_bytes", gpu.free_bytes},
                 {"total_bytes", gpu.total_bytes}, {"needed_bytes", need.total()},
                 {"fits", gpu.usable && need.total() <= gpu.free_bytes}}}};
    if (c.quantization) j["quantization"] = c.quantization->ToJson();
    if (gguf) j["gguf_tensor_types"] = gguf_types, j["file_bytes"] = gguf_bytes;
    if (c.sliding_window) j["sliding_window"] = *c.sliding_window;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model:        %s\n", opt.path.c_str());
  std::printf("architecture: %s (model_type %s)\n", c.architecture.c_str(), c.model_type.c_str());
  std::printf("shape:        %lld layers, hidden %lld, %lld heads x %lld (KV heads %lld), intermediate %lld, vocab %lld\n",
              (long long)c.num_hidden_layers, (long long)c.hidden_size, (long long)c.num_attention_heads,
              (long long)c.head_dim, (long long)c.num_key_value_heads, (long long)c.intermediate_size,
              (long long)c.vocab_size);
  std::printf("rope:         %s, theta %g, rotary dim %lld", std::string(RopeTypeName(c.rope_scaling.type)).c_str(),
              c.rope_theta, (long long)c.rotary_dim);
  if (c.rope_scaling.type != RopeType::kDefault) std::printf(", factor %g", c.rope_scaling.factor);
  if (c.rope_scaling.attention_factor != 1.0) std::printf(", attention factor %.6f", c.rope_scaling.attention_factor);
  std::printf("\ncontext:      %lld positions", (long long)c.max_position_embeddings);
  if (c.sliding_window) std::printf(", sliding window %lld", (long long)*c.sliding_window);
  std::printf("\nfeatures:    ");
  if (c.fused_qkv) std::printf(" fused-qkv");
  if (c.fused_gate_up) std::printf(" fused-gate-up");
  if (c.attention_bias) std::printf(" qkv-bias");
  if (c.qk_norm) std::printf(" qk-norm");
  std::printf(" %s embeddings\n", c.tie_word_embeddings ? "tied" : "untied");
  std::printf("dtype:        %s;", std::string(DTypeName(c.dtype)).c_str());
  for (const auto& [d, n] : dtype_counts) std::printf(" %s x%d", d.c_str(), n);
  std::printf("\n");
  if (c.quantization) {
    std::printf("quantization: MLX affine %d-bit, group size %d, %d quantized modules", c.quantization->global.bits,
                c.quantization->global.group_size, quantized_modules);
    if (!c.quantization->modules.empty()) std::printf(", %zu per-module overrides", c.quantization->modules.size());
    std::printf("\n");
  } else {
    std::printf("quantization: none\n");
  }
  if (gguf) {
    std::printf("gguf:        ");
    for (const auto& [t, n] : gguf_types) std::printf(" %s x%d", t.c_str(), n);
    std::printf(" (as stored; loaded as the dtypes above)\n");
  }
  std::printf("parameters:   %s\n", Count(params).c_str());
  std::printf("tensors:      %zu in %zu file(s), %s on disk\n", store.size(), gguf ? size_t{1} : store.Files().size(),
              Human(weights).c_str());
  std::printf("KV cache:     %s per token (%s per layer, 16-bit K and V)\n", Human(kv_per_token).c_str(),
              Human(kv_per_token_layer).c_str());
  std::printf("memory:       %s = weights %s + KV %s at %lld tokens\n", Human(total).c_str(), Human(weights).c_str(),
              Human(kv_per_token * ctx).c_str(), (long long)ctx);
  std::printf("gpu:          %s\n", gpu.description.c_str());
  if (gpu.usable) {
    std::printf("on the gpu:   %s at %lld tokens (weights %s, KV %s, activations %s, workspace %s): %s\n",
                Human(double(need.total())).c_str(), (long long)ctx, Human(double(need.weights)).c_str(),
                Human(double(need.kv_pool)).c_str(), Human(double(need.activations)).c_str(),
                Human(double(need.workspace)).c_str(),
                need.total() <= gpu.free_bytes ? "fits" : "does NOT fit the free memory");
  }
  for (const auto& m : missing) std::printf("warning: expected tensor %s is missing\n", m.c_str());
}

}  // namespace

void RegisterInfo(CLI::App& app) {
  auto opt = std::make_shared<InfoOptions>();
  auto* cmd = app.add_subcommand("info", "Describe a model: architecture, shapes, dtype/quantization, size, memory");
  cmd->add_option("path", opt->path, "Model directory (config.json + safetensors) or .safetensors file")->required();
  cmd->add_option("--ctx", opt->ctx, "Context length for the KV-cache estimate (default min(max positions, 4096))");
  cmd->add_flag("--json", opt->json, "Print JSON");
  cmd->callback([opt] { RunInfo(*opt); });
}

}  // namespace pensieve::cli

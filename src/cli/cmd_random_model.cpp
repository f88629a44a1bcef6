// pensieve random-model --shape NAME OUT_DIR: a random-weight model of a real shape, for benchmarks and tests.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "formats/random_model.h"
#include "util/error.h"

namespace pensieve::cli {

void RegisterRandomModel(CLI::App& app) {
  struct Options {
    std::string shape = "tiny", out, dtype = "bf16", tokenizer;
    uint64_t seed = 0;
    int64_t vocab = 0, layers = 0, ctx = 0;
    int group_size = 64;
  };
  auto opt = std::make_shared<Options>();
  std::string shapes;
  for (const auto& s : RandomModelShapes()) shapes += (shapes.empty() ? "" : ", ") + s;
  auto* cmd = app.add_subcommand("random-model", "Write a random-weight model of a real shape");
  cmd->add_option("--shape", opt->shape, "Shape: " + shapes)->capture_default_str();
  cmd->add_option("out_dir", opt->out, "Output directory")->required();
  cmd->add_option("--dtype", opt->dtype, "bf16, f16, f32, mlx4 or mlx8 (MLX affine, bf16 scales)")->capture_default_str();
  cmd->add_option("--group-size", opt->group_size, "Group size for mlx4/mlx8")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Random seed")->capture_default_str();
  cmd->add_option("--vocab", opt->vocab, "Override vocab_size");
  cmd->add_option("--layers", opt->layers, "Override num_hidden_layers");
  cmd->add_option("--ctx", opt->ctx, "Override max_position_embeddings");
  cmd->add_option("--tokenizer", opt->tokenizer, "Copy tokenizer files from this directory");
  cmd->callback([opt] {
    RandomModelOptions o;
    o.shape = opt->shape;
    o.seed = opt->seed;
    o.group_size = opt->group_size;
    o.tokenizer_dir = opt->tokenizer;
    if (opt->vocab) o.vocab = opt->vocab;
    if (opt->layers) o.layers = opt->layers;
    if (opt->ctx) o.ctx = opt->ctx;
    if (opt->dtype == "bf16") o.dtype = DType::kBF16;
    else if (opt->dtype == "f16") o.dtype = DType::kF16;
    else if (opt->dtype == "f32") o.dtype = DType::kF32;
    else if (opt->dtype == "mlx4") o.dtype = DType::kBF16, o.quant_bits = 4;
    else if (opt->dtype == "mlx8") o.dtype = DType::kBF16, o.quant_bits = 8;
    else throw Error("random-model: --dtype must be bf16, f16, f32, mlx4 or mlx8, got '" + opt->dtype + "'");
    auto t0 = std::chrono::steady_clock::now();
    auto files = WriteRandomModel(opt->out, o);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("wrote %s model (%s) to %s in %.1f s:\n", opt->shape.c_str(), opt->dtype.c_str(), opt->out.c_str(), secs);
    for (const auto& f : files) std::printf("  %s\n", f.c_str());
  });
}

}  // namespace pensieve::cli

// pensieve random-model --shape NAME OUT_DIR: a random-weight model of a real shape, for benchmarks and tests.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <span>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/stop_tokens.h"
#include "formats/random_model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve::cli {
namespace {

// --stop-after: the stop tokens are those `pensieve serve` will stop on for this tokenizer directory; the quiet
// tokens (no stable direction, so no stop right after them) are the special tokens and the whitespace-only ones,
// which is how chat templates end their generation prompts.
StopTendency MakeStopTendency(const std::string& tokenizer_dir, double mean_tokens, int64_t vocab) {
  Require(!tokenizer_dir.empty(), "random-model: --stop-after needs --tokenizer (it names the stop tokens)");
  std::unique_ptr<Tokenizer> tok = LoadTokenizer(tokenizer_dir);
  StopTendency st;
  st.mean_tokens = mean_tokens;
  for (int32_t id : StopTokens(tokenizer_dir, *tok)) {
    Require(id < vocab, "random-model: stop token " + std::to_string(id) + " is outside --vocab " + std::to_string(vocab));
    st.stop_tokens.push_back(id);
  }
  Require(!st.stop_tokens.empty(), "random-model: " + tokenizer_dir + " names no EOS or end-of-turn token");
  const int32_t n = static_cast<int32_t>(std::min<int64_t>(vocab, tok->vocab_size()));
  for (int32_t id = 0; id < n; ++id) {
    bool quiet = tok->IsSpecial(id);
    if (!quiet) {
      std::string text = tok->Decode(std::span<const int32_t>(&id, 1));
      quiet = !text.empty() && text.find_first_not_of(" \t\n\r\v\f") == std::string::npos;
    }
    if (quiet) st.quiet_tokens.push_back(id);
  }
  return st;
}

}  // namespace

void RegisterRandomModel(CLI::App& app) {
  struct Options {
    std::string shape = "tiny", out, dtype = "bf16", tokenizer;
    uint64_t seed = 0;
    int64_t vocab = 0, layers = 0, ctx = 0;
    int group_size = 64;
    double stop_after = 0;
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
  cmd->add_option("--stop-after", opt->stop_after,
                  "Plant a stop tendency: sampled replies (temperature 1) end after about N tokens on average and "
                  "never at their first token; the EOS/end-of-turn tokens of --tokenizer get a high logit at every "
                  "position, all other weights stay random. Calibrated for small hidden sizes (tiny); wider shapes "
                  "stop less often. Needs --tokenizer; greedy decoding stops at once");
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
    if (opt->stop_after != 0) {
      Require(opt->stop_after >= 2 && std::isfinite(opt->stop_after), "random-model: --stop-after must be >= 2");
      const nlohmann::json cj = RandomModelConfigJson(o);
      const int64_t vocab = cj["vocab_size"].get<int64_t>(), hidden = cj["hidden_size"].get<int64_t>();
      o.stop = MakeStopTendency(opt->tokenizer, opt->stop_after, vocab);
      std::string ids;
      for (int64_t id : o.stop->stop_tokens) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
      const double beta = StopBoost(*o.stop, hidden, vocab);
      std::printf("stop tendency: tokens %s, logit +%.2f (%.4f per element), p(stop) %.3f per step, %zu quiet tokens\n",
                  ids.c_str(), beta * static_cast<double>(hidden), beta, 1.0 / opt->stop_after,
                  o.stop->quiet_tokens.size());
    }
    auto t0 = std::chrono::steady_clock::now();
    auto files = WriteRandomModel(opt->out, o);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("wrote %s model (%s) to %s in %.1f s:\n", opt->shape.c_str(), opt->dtype.c_str(), opt->out.c_str(), secs);
    for (const auto& f : files) std::printf("  %s\n", f.c_str());
  });
}

}  // namespace pensieve::cli

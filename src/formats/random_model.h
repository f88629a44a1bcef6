#pragma once
// Random-weight models of real shapes (for benchmarks and tests without downloads): a config.json as the
// real checkpoint has it (classic `rope_theta`/`rope_scaling` keys) plus safetensors with the HF tensor names,
// in bf16/f32 or written directly in MLX affine 4/8-bit form (never materialising the float model).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "formats/dtype.h"
#include "formats/model_config.h"

namespace pensieve {

// One tensor of an HF checkpoint: name and shape (float weights, unquantized).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// The tensors an HF checkpoint of this config holds, in a stable order: embed_tokens, per layer (norms,
// attention projections with biases / q_norm / k_norm as the architecture has them, MLP), final norm,
// lm_head unless tied. Phi3 uses the fused qkv_proj [(H + 2*KV) * head_dim, hidden] and gate_up_proj
// [2 * intermediate, hidden].
std::vector<TensorSpec> HfTensorList(const ModelConfig& c);

// A planted end-of-turn tendency, so that sampled replies of a random model end by themselves (tests of
// clients that need a finished turn, e.g. Claude Code). Everything else stays random. How (WriteRandomModel):
//  - every embedding row except `quiet_tokens` gets +1 in every element: the residual stream then carries a
//    stable direction (all ones) that dominates the random parts (N(0, 0.02) per element), so after the final
//    RMSNorm x ~= (1, ..., 1) and sum(x) ~= hidden;
//  - the lm_head rows of `stop_tokens` (the embedding rows when tied) are centred (their random sum would shift
//    the logit by N(0, s^2)) and get +beta in every element: their logits rise by L = beta * hidden, with L
//    chosen so that the stop tokens together take probability p = 1 / mean_tokens at each step of plain
//    temperature-1 sampling:
//    k * e^L / (k * e^L + (V - k) * e^(s^2/2)) = p, s^2 = 0.02^2 * hidden the variance of the random logits;
//  - after a quiet token (chat templates' generation prompts end in one: a newline or a special token) x is an
//    ordinary random unit-RMS vector, sum(x) ~ N(0, hidden), so the boost is only L / sqrt(hidden) * N(0, 1):
//    a reply never stops at its first token. Replies are non-empty and 1 + Geometric(p) tokens long, mean
//    1/p = mean_tokens. Measured through `pensieve generate` (tiny shape, Qwen3 vocabulary, bf16, seed 0, 200
//    sampling seeds): mean_tokens 16 -> 15.7 tokens, 8 -> 8.3; mlx4: 8 -> 7.5, model seed 7: 8 -> 7.8 (100 each);
//    every reply ended and none was empty.
// The calibration assumes the +1 dominates what the random layers add to the residual stream (about
// 0.02^2 * sqrt(fan_in * hidden) per element and layer), true for small hidden sizes such as `tiny`. In wide
// shapes sum(x) falls short of hidden and replies run longer than asked (qwen3-0.6b with 2 layers, mean_tokens 8:
// mean 43 tokens, 39 of 40 replies ended within 200).
// The additions are spread over all elements (rather than one large one) so that bf16 rounding and MLX group
// quantization keep resolving the random parts. Greedy decoding picks a stop token at once (it is the argmax),
// so use sampling. In tied models the quiet tokens are never sampled (their logits lack the others' +sum(x)).
struct StopTendency {
  std::vector<int64_t> stop_tokens;   // ids to end replies with (EOS, end-of-turn); config.json's eos_token_id
  std::vector<int64_t> quiet_tokens;  // ids whose embeddings lack the stable direction (special, whitespace)
  double mean_tokens = 16;            // target mean reply length in tokens (>= 2)
};

// beta, the per-element addition to the stop tokens' rows (see StopTendency); for tests and the CLI's summary.
double StopBoost(const StopTendency& stop, int64_t hidden_size, int64_t vocab_size);

struct RandomModelOptions {
  std::string shape = "tiny";  // one of RandomModelShapes()
  DType dtype = DType::kBF16;  // float dtype of weights (and of scales/biases when quantized)
  int quant_bits = 0;          // 0 = float; 4 or 8 = MLX affine
  int group_size = 64;
  uint64_t seed = 0;
  std::optional<int64_t> vocab, layers, ctx;
  std::string tokenizer_dir;            // copy tokenizer/generation files from here when set
  uint64_t max_shard_bytes = 5ull << 30;
  std::optional<StopTendency> stop;     // none: every weight random (the default output is unchanged)
};

// "tiny", "llama-3.2-1b", "llama-3-8b", "phi-3-mini", "phi-4", "qwen3-0.6b".
std::vector<std::string> RandomModelShapes();

// config.json contents for a shape with the options' overrides applied (with `stop`, eos_token_id is its stop
// tokens). Throws Error for an unknown shape or an invalid StopTendency.
nlohmann::json RandomModelConfigJson(const RandomModelOptions& opt);

// Writes out_dir/config.json and the weights (model.safetensors, sharded above max_shard_bytes).
// Weights: N(0, 0.02) approximated by a sum of four uniforms (Irwin-Hall, exact mean and variance, tails cut at
// 6.9 sigma); norm weights 1 + N(0, 0.02); exact zeros are nudged away. Deterministic in (seed, tensor name,
// row): the same seed gives the same values in every dtype, and --dtype mlx4 equals quantizing the bf16 model.
// Returns the files written.
std::vector<std::string> WriteRandomModel(const std::string& out_dir, const RandomModelOptions& opt);

}  // namespace pensieve

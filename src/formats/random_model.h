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

struct RandomModelOptions {
  std::string shape = "tiny";  // one of RandomModelShapes()
  DType dtype = DType::kBF16;  // float dtype of weights (and of scales/biases when quantized)
  int quant_bits = 0;          // 0 = float; 4 or 8 = MLX affine
  int group_size = 64;
  uint64_t seed = 0;
  std::optional<int64_t> vocab, layers, ctx;
  std::string tokenizer_dir;            // copy tokenizer/generation files from here when set
  uint64_t max_shard_bytes = 5ull << 30;
};

// "tiny", "llama-3.2-1b", "llama-3-8b", "phi-3-mini", "phi-4", "qwen3-0.6b".
std::vector<std::string> RandomModelShapes();

// config.json contents for a shape with the options' overrides applied. Throws Error for an unknown shape.
nlohmann::json RandomModelConfigJson(const RandomModelOptions& opt);

// Writes out_dir/config.json and the weights (model.safetensors, sharded above max_shard_bytes).
// Weights: N(0, 0.02) approximated by a sum of four uniforms (Irwin-Hall, exact mean and variance, tails cut at
// 6.9 sigma); norm weights 1 + N(0, 0.02); exact zeros are nudged away. Deterministic in (seed, tensor name,
// row): the same seed gives the same values in every dtype, and --dtype mlx4 equals quantizing the bf16 model.
// Returns the files written.
std::vector<std::string> WriteRandomModel(const std::string& out_dir, const RandomModelOptions& opt);

}  // namespace pensieve

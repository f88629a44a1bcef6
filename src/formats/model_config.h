#pragma once
// ModelConfig: the Hugging Face config.json of a decoder-only model, parsed and validated.
//
// Supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM
// (Phi-3/3.5-mini, Phi-4, Phi-4-mini). Rope settings are read from either the classic keys (`rope_theta` +
// `rope_scaling`, as real checkpoints have) or transformers 5.x's `rope_parameters` ({rope_type, rope_theta,
// factor, ...}). Lenient with unknown keys; strict about the ones we use: a wrong type, an impossible value or
// inconsistent dimensions throw pensieve::Error naming the file and the field.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "formats/dtype.h"
#include "formats/mlx_quant.h"

namespace pensieve {

enum class Architecture { kLlama, kMistral, kQwen2, kQwen3, kPhi3 };
std::string_view ArchitectureName(Architecture a);  // "LlamaForCausalLM", ...

enum class RopeType {
  kDefault,   // inv_freq[i] = theta^(-2i/rotary_dim)
  kLinear,    // positions divided by factor (equivalently inv_freq / factor)
  kDynamic,   // dynamic NTK: theta grows once seq_len > original_max_position_embeddings (see HF)
  kLlama3,    // Llama 3.1 frequency-band smoothing (factor, low/high_freq_factor, original_max_pos)
  kLongRope,  // Phi-3 "longrope" / "su": per-frequency short/long factors and an attention factor
  kYarn,      // parsed (factor, original_max_pos, attention_factor, beta_fast/slow) but not required
};
std::string_view RopeTypeName(RopeType t);

struct RopeScaling {
  RopeType type = RopeType::kDefault;
  double factor = 1.0;                       // linear, dynamic, llama3, yarn; longrope: max_pos / original
  double low_freq_factor = 1.0;              // llama3
  double high_freq_factor = 4.0;             // llama3
  int64_t original_max_position_embeddings = 0;  // llama3, longrope, dynamic, yarn (0 = not given)
  std::vector<double> short_factor;          // longrope: rotary_dim / 2 entries
  std::vector<double> long_factor;           // longrope: rotary_dim / 2 entries
  // Multiplier applied to cos and sin (longrope, yarn). For longrope, as HF computes it: an explicit
  // `attention_factor` if given, else 1 when factor <= 1, else sqrt(1 + ln(factor) / ln(original_max_pos)).
  double attention_factor = 1.0;
  // Legacy longrope fields (Phi-3-small style); when present, HF-era Phi3 code used them as the attention
  // multiplier for short/long contexts. Kept for completeness; attention_factor is what HF 4.4x+ uses.
  std::optional<double> short_mscale, long_mscale;
  double beta_fast = 32.0, beta_slow = 1.0;  // yarn
};

enum class Activation { kSilu, kGelu, kGeluTanh };

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  std::string architecture;  // as written ("LlamaForCausalLM")
  std::string model_type;    // "llama", "mistral", "qwen2", "qwen3", "phi3"

  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // default: num_attention_heads
  int64_t head_dim = 0;             // default: hidden_size / num_attention_heads
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double partial_rotary_factor = 1.0;
  int64_t rotary_dim = 0;  // int(head_dim * partial_rotary_factor); even, <= head_dim; rotates the first dims

  bool attention_bias = false;  // q/k/v (and o for Llama's attention_bias) biases; Qwen2: q/k/v always
  bool o_proj_bias = false;     // Llama attention_bias covers o_proj too; Qwen2 has none on o_proj
  bool mlp_bias = false;
  bool qk_norm = false;         // Qwen3: RMSNorm over head_dim on q and k, before rope
  bool fused_qkv = false;       // Phi3: self_attn.qkv_proj [ (H + 2*KV) * head_dim, hidden ]
  bool fused_gate_up = false;   // Phi3: mlp.gate_up_proj [ 2 * intermediate, hidden ] (gate first)
  bool tie_word_embeddings = false;
  Activation hidden_act = Activation::kSilu;
  std::optional<int64_t> sliding_window;  // tokens; nullopt = full attention

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json's, plus generation_config.json's when present (deduped)
  std::optional<int64_t> pad_token_id;

  DType dtype = DType::kF32;  // torch_dtype / dtype; F32 when absent
  std::optional<QuantConfig> quantization;  // MLX affine quantization, when the model is quantized

  // Rows of the fused qkv projection, for Phi3 (and what q+k+v sum to for the others).
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Inverse frequencies for positions within the original context (rotary_dim / 2 values), in double,
  // applying the static part of the scaling type (default, linear, llama3, longrope short factors).
  // Dynamic and longrope's long factors depend on sequence length: pass seq_len (0 = short/original).
  std::vector<double> RopeInvFreq(int64_t seq_len = 0) const;
};

// Parses config.json text. `file` names it in errors. Does not read generation_config.json.
ModelConfig ParseModelConfig(std::string_view json_text, const std::string& file);
ModelConfig ParseModelConfigJson(const nlohmann::json& j, const std::string& file);

// Loads <dir>/config.json (or a path to a config.json) and, when present, generation_config.json beside it
// (its eos_token_id list is merged into eos_token_ids). Throws Error naming the file.
ModelConfig LoadModelConfig(const std::string& path);

}  // namespace pensieve

#pragma once
// Binding checkpoint tensors to the decoder's slots: one weight-name map for all supported architectures.
//
// Names are Hugging Face's (model.layers.{i}.self_attn.q_proj.weight, ...). Per-architecture differences:
//   Phi3: self_attn.qkv_proj [(H + 2*KV) * head_dim, hidden] and mlp.gate_up_proj [2 * inter, hidden] are
//         split into q/k/v and gate/up by row views (MatRef::RowSlice), never copied.
//   Qwen2: q/k/v biases. Qwen3: self_attn.q_norm / k_norm [head_dim]. Llama attention_bias / mlp_bias.
//   Tied embeddings: lm_head is the embedding table (float or quantized).
// MLX affine quantization: a module is quantized when `<m>.scales` exists; bits/group size come from the
// config's quantization (per-module overrides included). Binding is strict: every slot's shape is checked
// against the config, and every tensor in the files must be used or explicitly ignored (stored rotary
// tables, a tied lm_head), otherwise pensieve::Error names the tensor and file.
// Small vectors (norm weights, biases) are widened to f32 copies; matrices stay in the mapped files.
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"

namespace pensieve::model {

struct LayerWeights {
  std::vector<float> attn_norm;  // [hidden]
  std::vector<float> mlp_norm;   // [hidden]
  backend::MatRef wq, wk, wv, wo;  // [q_dim, hidden] [kv_dim, hidden] [kv_dim, hidden] [hidden, q_dim]
  std::vector<float> bq, bk, bv, bo;  // empty when absent
  std::vector<float> q_norm, k_norm;  // [head_dim], Qwen3
  backend::MatRef w_gate, w_up, w_down;  // [inter, hidden] [inter, hidden] [hidden, inter]
  std::vector<float> b_gate, b_up, b_down;
};

struct ModelWeights {
  backend::MatRef embed;    // [vocab, hidden]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  backend::MatRef lm_head;  // [vocab, hidden]; the embedding table when tied
  int64_t matrix_bytes = 0; // bytes of all matrices read per token (decode cost), embedding row excluded
};

ModelWeights BindWeights(const ModelConfig& config, const TensorStore& store);

}  // namespace pensieve::model

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
// Small vectors (norm weights, biases) are widened to f32 copies the binding owns; matrices stay in the mapped
// files. The binding is in host memory; model/upload.h moves it into a backend's memory.
#include <cstdint>
#include <deque>
#include <vector>

#include "backend/backend.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"

namespace pensieve::model {

// Vectors are [1, n] f32 Tensors; an absent optional vector is an empty Tensor.
struct LayerWeights {
  backend::Tensor attn_norm;  // [hidden]
  backend::Tensor mlp_norm;   // [hidden]
  backend::MatRef wq, wk, wv, wo;  // [q_dim, hidden] [kv_dim, hidden] [kv_dim, hidden] [hidden, q_dim]
  backend::Tensor bq, bk, bv, bo;
  backend::Tensor q_norm, k_norm;  // [head_dim], Qwen3
  backend::MatRef w_gate, w_up, w_down;  // [inter, hidden] [inter, hidden] [hidden, inter]
  backend::Tensor b_gate, b_up, b_down;
};

struct ModelWeights {
  ModelWeights() = default;
  ModelWeights(ModelWeights&&) = default;  // moves keep the vectors' addresses (deque blocks move whole)
  ModelWeights& operator=(ModelWeights&&) = default;
  ModelWeights(const ModelWeights&) = delete;

  backend::MatRef embed;    // [vocab, hidden]
  std::vector<LayerWeights> layers;
  backend::Tensor final_norm;  // [hidden]
  backend::MatRef lm_head;  // [vocab, hidden]; the embedding table when tied
  int64_t matrix_bytes = 0; // bytes of all matrices read per token (decode cost), embedding row excluded

  std::deque<std::vector<float>> vectors;  // the f32 vectors the Tensors point to (host binding only)

  // Every matrix and every vector, for code that visits them all (upload).
  template <class FM, class FV>
  void ForEach(FM&& matrix, FV&& vector) {
    matrix(embed), matrix(lm_head), vector(final_norm);
    for (LayerWeights& L : layers) {
      for (backend::MatRef* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) matrix(*m);
      for (backend::Tensor* v : {&L.attn_norm, &L.mlp_norm, &L.bq, &L.bk, &L.bv, &L.bo, &L.q_norm, &L.k_norm,
                                 &L.b_gate, &L.b_up, &L.b_down})
        vector(*v);
    }
  }
};

ModelWeights BindWeights(const ModelConfig& config, const TensorStore& store);

}  // namespace pensieve::model

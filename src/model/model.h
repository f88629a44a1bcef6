#pragma once
// The one decoder-only transformer (Llama, Mistral, Qwen2, Qwen3, Phi3), parameterised by ModelConfig,
// running its ops on a Backend and keeping its KV cache in the backend's paged cache.
//
// Thread safety: none; one thread (the engine's) owns a Model and calls everything.
// Memory: weights stay in the mapped files; activation buffers are sized at Load for opts.max_batch_tokens
// rows, so Forward() allocates nothing when its tokens fit (larger calls are processed in chunks).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/weights.h"

namespace pensieve::model {

struct LoadOptions {
  int64_t kv_budget_bytes = int64_t{1} << 30;  // KV pool size
  int kv_block_tokens = 16;
  int max_batch_tokens = 512;   // rows per forward chunk (activation buffers)
  int max_sequences = 64;
  int64_t max_context = 0;      // per sequence; 0: config's max_position_embeddings
  int threads = 0;              // for callers that build the backend (MakeCpuBackend); 0: all cores
};

struct ForwardItem {
  int seq;
  std::span<const int32_t> tokens;
  bool all_logits = false;
};

class Model {
 public:
  // Opens a model directory (config.json + safetensors). Throws pensieve::Error naming file/tensor/field.
  static std::unique_ptr<Model> Load(const std::string& path, backend::Backend& backend, const LoadOptions& opts);
  // The same with the tensors given (e.g. TensorStore::FromMemory for the model built into the binary);
  // config.json is read from config_dir.
  static std::unique_ptr<Model> Load(const std::string& config_dir, TensorStore store, backend::Backend& backend,
                                     const LoadOptions& opts);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  backend::KvCache& kv_cache() { return *kv_; }
  int64_t max_context() const { return max_context_; }

  int NewSequence();
  void FreeSequence(int seq);
  // A new sequence sharing the first n tokens of seq's KV blocks (prefix reuse).
  int ForkSequence(int seq, int64_t n);
  int SequenceLength(int seq) const;
  bool CanAppend(int seq, int n) const;

  // Appends each item's tokens to its sequence's KV cache at positions [len, len+n) and writes logits
  // (vocab floats) for the last token of each item (or every token when all_logits) into `logits`, in item
  // order. Throws pensieve::Error (before changing any state) when an item does not fit or ids are bad.
  void Forward(std::span<const ForwardItem> items, std::span<float> logits);
  // Rows of logits a Forward call on `items` writes.
  static int64_t LogitRows(std::span<const ForwardItem> items);

 private:
  Model(backend::Backend& backend, ModelConfig config, TensorStore store, const LoadOptions& opts);
  void ForwardChunk(int64_t begin, int64_t end, std::span<float> logits);
  void Layer(int layer, int64_t begin, int64_t T);
  void ApplyRope(float* x, int heads, int64_t begin, int64_t T);

  backend::Backend& backend_;
  ModelConfig config_;
  TensorStore store_;
  ModelWeights weights_;
  std::unique_ptr<backend::KvCache> kv_;
  int64_t max_context_ = 0;
  int64_t max_rows_ = 0;

  // Rope inverse frequencies (f32, as transformers keeps them): short/original and, for longrope, long.
  std::vector<float> inv_freq_short_, inv_freq_long_;

  // The flattened batch of the current Forward call, one entry per token row.
  std::vector<int32_t> tokens_, seqs_, pos_;
  std::vector<uint8_t> long_rope_;   // row uses longrope's long factors
  std::vector<int64_t> logit_rows_;  // rows whose logits are returned, ascending

  // Activations for max_rows_ rows.
  std::vector<float> x_, xb_, q_, k_, v_, att_, gate_, up_, out_;
};

}  // namespace pensieve::model

#pragma once
// The one decoder-only transformer (Llama, Mistral, Qwen2, Qwen3, Phi3), parameterised by ModelConfig,
// running its ops on a Backend.
//
// The model owns, in the backend's memory, its weights (model/upload.h), activation buffers and the KV storage
// (a pool of blocks). It does not know sequences: which blocks hold whose positions is the engine's
// bookkeeping (engine/kv_blocks.h), handed in with every call as each item's block table.
//
// Thread safety: none; one thread (the engine's) owns a Model and calls everything.
// Memory: everything is sized at Load for opts.max_batch_tokens rows and opts.max_sequences items, so
// Forward() allocates nothing when its rows fit (larger calls run in chunks).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/upload.h"
#include "model/weights.h"

namespace pensieve::model {

struct LoadOptions {
  // KV pool size; <= 0: nine tenths of the memory the backend has free once weights, activations and workspace
  // are counted, at most max_sequences full contexts (the memory guard still refuses a model that leaves none).
  int64_t kv_budget_bytes = int64_t{1} << 30;
  int kv_block_tokens = 16;
  int max_batch_tokens = 512;   // rows per forward chunk (activation buffers)
  int max_sequences = 64;       // items per call (and live sequences the engine keeps)
  int64_t max_context = 0;      // per sequence; 0: config's max_position_embeddings
  int threads = 0;              // for callers that build the backend; 0: all cores
};

// Which logits a call computes for an item: none (a prompt chunk that is not the last), its last token's, or
// every token's.
enum class Logits : uint8_t { kNone, kLast, kAll };

struct ForwardItem {
  std::span<const int32_t> blocks;  // the sequence's KV block table, covering positions [0, start + tokens)
  int64_t start = 0;                // positions already stored: tokens[0] goes to position `start`
  std::span<const int32_t> tokens;
  Logits logits = Logits::kLast;
};

// Where the model's memory goes (bytes in the backend's memory).
struct MemoryUse {
  int64_t weights = 0;      // uploaded weights (0 when used in place from the mapped files)
  int64_t kv_pool = 0;
  int64_t activations = 0;
  int64_t workspace = 0;    // the backend's own scratch
  int64_t total() const { return weights + kv_pool + activations + workspace; }
};

class Model {
 public:
  // Opens a model directory (config.json + safetensors). Throws pensieve::Error naming file/tensor/field, or,
  // on a device, how much memory the model needs and how much is free when it does not fit.
  static std::unique_ptr<Model> Load(const std::string& path, backend::Backend& backend, const LoadOptions& opts);
  // The same with the tensors given (e.g. TensorStore::FromMemory for the model built into the binary);
  // config.json is read from config_dir.
  static std::unique_ptr<Model> Load(const std::string& config_dir, TensorStore store, backend::Backend& backend,
                                     const LoadOptions& opts);
  // What Load would allocate in `backend` for this model (for `pensieve info`), without allocating it.
  static MemoryUse Plan(const std::string& path, backend::Backend& backend, const LoadOptions& opts);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return host_weights_; }  // the host binding (sizes, formats)
  backend::Backend& backend() { return backend_; }
  const MemoryUse& memory() const { return memory_; }
  int64_t max_context() const { return max_context_; }
  int max_items() const { return max_items_; }
  int kv_block_tokens() const { return kv_->layout().block_tokens; }
  int64_t kv_blocks() const { return kv_->layout().blocks; }  // the pool the engine hands out
  int64_t kv_pool_bytes() const { return kv_->bytes(); }

  // Copies KV block `from` into `to` (copy-on-write of a shared block; before the next Forward reads `to`).
  void CopyKvBlock(int32_t from, int32_t to);

  // Stores each item's tokens at positions [start, start + n) and computes the requested logits. Throws
  // pensieve::Error before changing any state when an item is malformed (no tokens, ids outside the vocabulary,
  // blocks that do not cover it, past max_context, too many items).
  //  - with `logits`: the logit rows (item order; LogitRows() of them) are copied there;
  //  - with `samples`: each SampleRow (logits_row: an index into the call's logit rows, item order) is drawn
  //    in the same step and its result written to `out` (only token ids and logprobs leave the backend).
  void Forward(std::span<const ForwardItem> items, std::span<float> logits);
  void Forward(std::span<const ForwardItem> items, std::span<const backend::SampleRow> samples,
               std::span<backend::SampleResult> out);
  // Draws once more from the logits of the last Forward (constrained decoding after a rejected token).
  void Resample(const backend::SampleRow& row, backend::SampleResult* out);
  // Rows of logits a Forward call on `items` computes.
  static int64_t LogitRows(std::span<const ForwardItem> items);

 private:
  Model(backend::Backend& backend, ModelConfig config, TensorStore store, const LoadOptions& opts);
  void Prepare(std::span<const ForwardItem> items, std::span<const backend::SampleRow> samples);
  void RunChunk(int64_t begin, int64_t end, bool last, std::span<float> host_logits);
  void Layer(int layer, int64_t T);

  backend::Backend& backend_;
  ModelConfig config_;
  TensorStore store_;
  ModelWeights host_weights_;
  BackendWeights weights_;
  std::unique_ptr<backend::KvStorage> kv_;
  MemoryUse memory_;
  int64_t max_context_ = 0;
  int64_t max_rows_ = 0;    // rows per step
  int max_items_ = 0;
  int64_t logit_cap_ = 0;   // logit rows the backend buffers hold at once
  float eps_ = 1e-6f;
  backend::RopeParams rope_;

  // Backend memory: rope tables and activations.
  std::unique_ptr<backend::Buffer> rope_buf_, act_buf_;
  backend::Tensor x_, xb_, q_, k_, v_, att_, h_, normed_, logits_;

  // The current call, flattened (host memory): one entry per row.
  std::vector<int32_t> tokens_, pos_, row_item_;
  std::vector<uint8_t> long_rope_;
  std::vector<int32_t> logit_rows_;  // rows whose logits are computed, ascending
  std::vector<int32_t> chunk_rows_;  // a chunk's logit rows, relative to the chunk
  std::vector<int32_t> padded_row_;  // padded decode step: the caller's logit index -> logits row (else empty)
  std::vector<uint8_t> row_sampled_; // padded decode step: rows that have a caller's sample
  std::vector<int32_t> tables_;      // [items, stride]
  int64_t stride_ = 0;
  std::vector<backend::SampleRow> samples_;
  std::vector<backend::SampleResult> results_;
  uint64_t step_key_ = 0;            // non-zero: a padded decode step the backend may replay
  int64_t call_logit_rows_ = 0;
};

}  // namespace pensieve::model

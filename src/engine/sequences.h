#pragma once
// Sequences over a Model: the KV block manager plus what a forward call over sequences needs (appending the
// new tokens' positions, copy-on-write of shared blocks, each item's block table). The engine runs its steps
// through it; tests and the CLI use it to run a model directly.
//
// Not thread-safe: one owner.
#include <cstdint>
#include <span>
#include <vector>

#include "backend/sampling.h"
#include "engine/kv_blocks.h"
#include "model/model.h"

namespace pensieve::engine {

class Sequences {
 public:
  // Blocks and sequence slots come from the model (its KV pool, max_sequences, max_context).
  explicit Sequences(model::Model& model);

  model::Model& model() { return model_; }
  KvBlockManager& blocks() { return blocks_; }
  const KvBlockManager& blocks() const { return blocks_; }

  int New() { return blocks_.NewSequence(); }
  // A new sequence sharing the first n tokens of seq's KV blocks (prefix reuse).
  int Fork(int seq, int64_t n) { return blocks_.Fork(seq, n); }
  void Free(int seq) { blocks_.Free(seq); }
  int64_t Length(int seq) const { return blocks_.Length(seq); }
  bool CanAppend(int seq, int64_t n) const { return blocks_.CanAppend(seq, n); }

  struct Item {
    int seq = -1;
    std::span<const int32_t> tokens;
    model::Logits logits = model::Logits::kLast;
  };
  // Appends each item's tokens to its sequence and runs the model (see Model::Forward). Throws pensieve::Error
  // and leaves every sequence as it was when an item does not fit (KV pool, context), names a sequence twice,
  // or the model refuses the call.
  void Forward(std::span<const Item> items, std::span<float> logits);
  void Forward(std::span<const Item> items, std::span<const backend::SampleRow> samples,
               std::span<backend::SampleResult> out);
  // One step of tokens[i] for sequence ids[i], each drawing its next token greedily into next[i] (the engine's
  // warm-up and the benchmarks run the model this way).
  void GreedyStep(std::span<const int> ids, std::span<const std::span<const int32_t>> tokens, std::span<int32_t> next);
  int32_t GreedyStep(int seq, std::span<const int32_t> tokens) {
    int32_t next = 0;
    GreedyStep(std::span(&seq, 1), std::span(&tokens, 1), std::span(&next, 1));
    return next;
  }

 private:
  void Append(std::span<const Item> items);
  void Rollback();

  model::Model& model_;
  KvBlockManager blocks_;
  std::vector<model::ForwardItem> items_;
  std::vector<std::pair<int, int64_t>> before_;  // (sequence, length) before the current call
};

}  // namespace pensieve::engine

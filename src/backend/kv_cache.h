#pragma once
// Paged KV cache: fixed-size token blocks drawn from one pool with a memory budget.
//
// A sequence is a block table (block ids in position order) plus a length. Growing a sequence takes blocks
// from the free list; nothing is ever copied to grow. Blocks are refcounted so sequences can share a prefix:
// Fork() makes a new sequence that starts with the first n tokens of another one, sharing its blocks.
// A shared block is never written: appending into a partly filled block that another sequence also holds
// first copies it (CopyBlock, the one place KV data is copied). Free() drops the references; a block whose
// count reaches zero returns to the free list.
//
// Storage (host memory, f32): block b holds, per layer, K then V as [block_tokens, kv_heads * head_dim].
// The pool is allocated once and not touched until used, so resident memory follows actual use.
// All bookkeeping storage is reserved up front: Append() within budget allocates no heap memory.
// Not thread-safe: one owner (the engine thread) calls it.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace pensieve::backend {

struct KvCacheConfig {
  int layers = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int block_tokens = 16;
  int64_t budget_bytes = 0;   // pool size; rounded down to whole blocks (at least one block)
  int max_sequences = 64;     // live sequences at once
  int64_t max_context = 4096; // longest sequence (sizes each block table up front)
};

class KvCache {
 public:
  explicit KvCache(const KvCacheConfig& config);
  virtual ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheConfig& config() const { return config_; }
  int64_t kv_dim() const { return int64_t{config_.kv_heads} * config_.head_dim; }
  int64_t total_blocks() const { return num_blocks_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_list_.size()); }
  int64_t block_bytes() const { return block_floats_ * int64_t{sizeof(float)}; }
  int64_t pool_bytes() const { return num_blocks_ * block_bytes(); }

  // Sequence lifetime. NewSequence() throws pensieve::Error when max_sequences are live.
  int NewSequence();
  // A new sequence holding the first n_tokens (<= Length(seq)) of seq, sharing its blocks.
  int Fork(int seq, int64_t n_tokens);
  void Free(int seq);
  bool IsLive(int seq) const;

  int64_t Length(int seq) const;
  // Whether n more tokens fit: blocks free (counting copy-on-write of a shared last block) and max_context.
  bool CanAppend(int seq, int64_t n) const;
  // Reserves positions [Length, Length + n) (throws pensieve::Error when !CanAppend).
  void Append(int seq, int64_t n);
  // Shortens a sequence (e.g. to drop rejected tokens); frees blocks past the new end.
  void Truncate(int seq, int64_t length);

  std::span<const int32_t> BlockTable(int seq) const;
  int RefCount(int32_t block) const { return refcount_[block]; }

  // [block_tokens, kv_dim] for (block, layer).
  float* Keys(int32_t block, int layer) { return pool_ + block * block_floats_ + layer * layer_floats_ * 2; }
  float* Values(int32_t block, int layer) { return Keys(block, layer) + layer_floats_; }
  const float* Keys(int32_t block, int layer) const {
    return pool_ + block * block_floats_ + layer * layer_floats_ * 2;
  }
  const float* Values(int32_t block, int layer) const { return Keys(block, layer) + layer_floats_; }
  // The key/value row of a sequence position (must be < Length(seq)).
  float* KeyAt(int seq, int layer, int64_t pos);
  float* ValueAt(int seq, int layer, int64_t pos);

 private:
  struct Sequence {
    bool live = false;
    int64_t length = 0;
    std::vector<int32_t> blocks;
  };
  int32_t TakeBlock();
  void Release(int32_t block);
  void CopyBlock(int32_t from, int32_t to);
  const Sequence& Seq(int seq) const;
  Sequence& Seq(int seq);

  KvCacheConfig config_;
  int64_t layer_floats_ = 0;  // block_tokens * kv_dim
  int64_t block_floats_ = 0;  // layers * 2 * layer_floats_
  int64_t num_blocks_ = 0;
  int64_t max_blocks_per_seq_ = 0;
  float* pool_ = nullptr;
  std::vector<int32_t> free_list_;  // LIFO stack of free block ids
  std::vector<int> refcount_;
  std::vector<Sequence> seqs_;
  std::vector<int> free_seqs_;
};

}  // namespace pensieve::backend

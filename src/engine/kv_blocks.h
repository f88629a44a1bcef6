#pragma once
// The KV block manager: which KV blocks each sequence owns (the engine's half of the paged KV cache; the
// storage itself is the backend's KvStorage, addressed through the block tables this hands out).
//
// A sequence is a block table (block ids in position order) plus a length. Growing a sequence takes blocks
// from the free list; nothing is ever copied to grow. Blocks are refcounted so sequences can share a prefix:
// Fork() makes a new sequence that starts with the first n tokens of another one, sharing its blocks. A shared
// block is never written: appending into a partly filled block that another sequence also holds first moves
// the sequence to a private copy; Append() reports that copy through its callback so the caller has the
// storage copy the block (KvStorage::CopyBlock). Free() drops the references; a block whose count reaches zero
// returns to the free list.
//
// All bookkeeping storage is reserved up front: Append() within budget allocates no heap memory.
// Not thread-safe: one owner (the engine thread) calls it.
#include <cstdint>
#include <span>
#include <vector>

#include "util/function_ref.h"

namespace pensieve::engine {

struct KvBlocksConfig {
  int block_tokens = 16;
  int64_t blocks = 0;          // in the pool
  int max_sequences = 64;      // live sequences at once
  int64_t max_context = 4096;  // longest sequence (sizes each block table up front)
};

class KvBlockManager {
 public:
  explicit KvBlockManager(const KvBlocksConfig& config);

  const KvBlocksConfig& config() const { return config_; }
  int block_tokens() const { return config_.block_tokens; }
  int64_t total_blocks() const { return config_.blocks; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_list_.size()); }
  // Blocks a block table of the longest sequence has (the width of a step's block tables).
  int64_t max_blocks_per_sequence() const { return max_blocks_per_seq_; }

  // Sequence lifetime. NewSequence() throws pensieve::Error when max_sequences are live.
  int NewSequence();
  // A new sequence holding the first n_tokens (<= Length(seq)) of seq, sharing its blocks.
  int Fork(int seq, int64_t n_tokens);
  void Free(int seq);
  bool IsLive(int seq) const;

  int64_t Length(int seq) const;
  // Whether n more tokens fit: blocks free (counting copy-on-write of a shared last block) and max_context.
  bool CanAppend(int seq, int64_t n) const;
  // Reserves positions [Length, Length + n); throws pensieve::Error when !CanAppend. When the last block is
  // shared it is first replaced by a private copy: copy(from, to) is called before Append returns, and the
  // caller must copy the block's storage.
  void Append(int seq, int64_t n, FunctionRef<void(int32_t, int32_t)> copy);
  // Shortens a sequence (e.g. to drop rejected tokens); frees blocks past the new end.
  void Truncate(int seq, int64_t length);

  std::span<const int32_t> BlockTable(int seq) const;
  int RefCount(int32_t block) const { return refcount_[block]; }

 private:
  struct Sequence {
    bool live = false;
    int64_t length = 0;
    std::vector<int32_t> blocks;
  };
  int32_t TakeBlock();
  void Release(int32_t block);
  const Sequence& Seq(int seq) const;
  Sequence& Seq(int seq);

  KvBlocksConfig config_;
  int64_t max_blocks_per_seq_ = 0;
  std::vector<int32_t> free_list_;  // LIFO stack of free block ids
  std::vector<int> refcount_;
  std::vector<Sequence> seqs_;
  std::vector<int> free_seqs_;
};

}  // namespace pensieve::engine

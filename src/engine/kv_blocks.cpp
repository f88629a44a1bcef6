#include "engine/kv_blocks.h"

#include <string>

#include "util/error.h"

namespace pensieve::engine {

KvBlockManager::KvBlockManager(const KvBlocksConfig& config) : config_(config) {
  if (!(config.block_tokens > 0 && config.blocks > 0))
    throw Error("kv blocks: block_tokens and blocks must be positive");
  if (!(config.max_sequences > 0 && config.max_context > 0))
    throw Error("kv blocks: max_sequences and max_context must be positive");
  if (!(config.blocks < (int64_t{1} << 31))) throw Error("kv blocks: too many blocks");
  max_blocks_per_seq_ = (config.max_context + config.block_tokens - 1) / config.block_tokens;
  free_list_.reserve(config.blocks);
  for (int64_t b = config.blocks - 1; b >= 0; --b) free_list_.push_back(static_cast<int32_t>(b));
  refcount_.assign(config.blocks, 0);
  seqs_.resize(config.max_sequences);
  free_seqs_.reserve(config.max_sequences);
  for (int s = config.max_sequences - 1; s >= 0; --s) free_seqs_.push_back(s);
}

const KvBlockManager::Sequence& KvBlockManager::Seq(int seq) const {
  if (!(seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].live))
    throw Error("kv blocks: no live sequence " + std::to_string(seq));
  return seqs_[seq];
}
KvBlockManager::Sequence& KvBlockManager::Seq(int seq) {
  return const_cast<Sequence&>(static_cast<const KvBlockManager*>(this)->Seq(seq));
}

bool KvBlockManager::IsLive(int seq) const {
  return seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].live;
}

int KvBlockManager::NewSequence() {
  if (!(!free_seqs_.empty()))
    throw Error("kv blocks: all " + std::to_string(config_.max_sequences) + " sequence slots are in use");
  int seq = free_seqs_.back();
  free_seqs_.pop_back();
  Sequence& s = seqs_[seq];
  s.live = true;
  s.length = 0;
  s.blocks.clear();
  s.blocks.reserve(max_blocks_per_seq_);
  return seq;
}

int KvBlockManager::Fork(int seq, int64_t n_tokens) {
  const Sequence& src = Seq(seq);
  if (!(n_tokens >= 0 && n_tokens <= src.length)) throw Error("kv blocks: fork length out of range");
  int child = NewSequence();  // seqs_ is sized once, so `src` stays valid
  Sequence& dst = seqs_[child];
  const int64_t n_blocks = (n_tokens + config_.block_tokens - 1) / config_.block_tokens;
  for (int64_t i = 0; i < n_blocks; ++i) {
    const int32_t b = src.blocks[i];
    ++refcount_[b];
    dst.blocks.push_back(b);
  }
  dst.length = n_tokens;
  return child;
}

void KvBlockManager::Free(int seq) {
  Sequence& s = Seq(seq);
  for (int32_t b : s.blocks) Release(b);
  s.blocks.clear();
  s.length = 0;
  s.live = false;
  free_seqs_.push_back(seq);
}

int64_t KvBlockManager::Length(int seq) const { return Seq(seq).length; }

std::span<const int32_t> KvBlockManager::BlockTable(int seq) const { return Seq(seq).blocks; }

bool KvBlockManager::CanAppend(int seq, int64_t n) const {
  const Sequence& s = Seq(seq);
  if (n < 0 || s.length + n > config_.max_context) return false;
  const int64_t have = static_cast<int64_t>(s.blocks.size());
  const int64_t need = (s.length + n + config_.block_tokens - 1) / config_.block_tokens - have;
  // Writing into a shared, partly filled last block needs a private copy first.
  const bool cow = n > 0 && s.length % config_.block_tokens != 0 && refcount_[s.blocks.back()] > 1;
  return need + (cow ? 1 : 0) <= free_blocks();
}

void KvBlockManager::Append(int seq, int64_t n, FunctionRef<void(int32_t, int32_t)> copy) {
  if (!(CanAppend(seq, n)))
    throw Error("kv blocks: no room to append " + std::to_string(n) + " tokens to sequence " +
                std::to_string(seq) + " (" + std::to_string(free_blocks()) + " free blocks, length " +
                std::to_string(Length(seq)) + ")");
  Sequence& s = seqs_[seq];
  if (n == 0) return;
  if (s.length % config_.block_tokens != 0 && refcount_[s.blocks.back()] > 1) {
    const int32_t fresh = TakeBlock();
    copy(s.blocks.back(), fresh);
    Release(s.blocks.back());
    s.blocks.back() = fresh;
  }
  s.length += n;
  while (static_cast<int64_t>(s.blocks.size()) * config_.block_tokens < s.length) s.blocks.push_back(TakeBlock());
}

void KvBlockManager::Truncate(int seq, int64_t length) {
  Sequence& s = Seq(seq);
  if (!(length >= 0 && length <= s.length)) throw Error("kv blocks: truncate length out of range");
  const int64_t keep = (length + config_.block_tokens - 1) / config_.block_tokens;
  while (static_cast<int64_t>(s.blocks.size()) > keep) {
    Release(s.blocks.back());
    s.blocks.pop_back();
  }
  s.length = length;
}

int32_t KvBlockManager::TakeBlock() {
  const int32_t b = free_list_.back();
  free_list_.pop_back();
  refcount_[b] = 1;
  return b;
}

void KvBlockManager::Release(int32_t block) {
  if (--refcount_[block] == 0) free_list_.push_back(block);
}

}  // namespace pensieve::engine

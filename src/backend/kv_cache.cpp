#include "backend/kv_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "util/error.h"

namespace pensieve::backend {

KvCache::KvCache(const KvCacheConfig& config) : config_(config) {
  if (!(config.layers > 0 && config.kv_heads > 0 && config.head_dim > 0 && config.block_tokens > 0))
    throw Error("kv cache: layers, kv_heads, head_dim and block_tokens must be positive");
  if (!(config.max_sequences > 0 && config.max_context > 0))
    throw Error("kv cache: max_sequences and max_context must be positive");
  layer_floats_ = int64_t{config.block_tokens} * kv_dim();
  block_floats_ = int64_t{config.layers} * 2 * layer_floats_;
  num_blocks_ = std::max<int64_t>(1, config.budget_bytes / block_bytes());
  if (!(num_blocks_ < (int64_t{1} << 31))) throw Error("kv cache: too many blocks");
  max_blocks_per_seq_ = (config.max_context + config.block_tokens - 1) / config.block_tokens;

  // Anonymous mapping: pages become resident only when a block is first written.
  size_t bytes = static_cast<size_t>(pool_bytes());
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!(p != MAP_FAILED)) throw Error("kv cache: cannot reserve " + std::to_string(bytes) + " bytes");
  pool_ = static_cast<float*>(p);

  free_list_.reserve(num_blocks_);
  for (int64_t b = num_blocks_ - 1; b >= 0; --b) free_list_.push_back(static_cast<int32_t>(b));
  refcount_.assign(num_blocks_, 0);
  seqs_.resize(config.max_sequences);
  free_seqs_.reserve(config.max_sequences);
  for (int s = config.max_sequences - 1; s >= 0; --s) free_seqs_.push_back(s);
}

KvCache::~KvCache() {
  if (pool_) munmap(pool_, static_cast<size_t>(pool_bytes()));
}

const KvCache::Sequence& KvCache::Seq(int seq) const {
  if (!(seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].live))
    throw Error("kv cache: no live sequence " + std::to_string(seq));
  return seqs_[seq];
}
KvCache::Sequence& KvCache::Seq(int seq) { return const_cast<Sequence&>(static_cast<const KvCache*>(this)->Seq(seq)); }

bool KvCache::IsLive(int seq) const { return seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].live; }

int KvCache::NewSequence() {
  if (!(!free_seqs_.empty()))
    throw Error("kv cache: all " + std::to_string(config_.max_sequences) + " sequence slots are in use");
  int seq = free_seqs_.back();
  free_seqs_.pop_back();
  Sequence& s = seqs_[seq];
  s.live = true;
  s.length = 0;
  s.blocks.clear();
  s.blocks.reserve(max_blocks_per_seq_);
  return seq;
}

int KvCache::Fork(int seq, int64_t n_tokens) {
  const Sequence& src = Seq(seq);
  if (!(n_tokens >= 0 && n_tokens <= src.length)) throw Error("kv cache: fork length out of range");
  int child = NewSequence();
  Sequence& dst = seqs_[child];
  const Sequence& src2 = seqs_[seq];  // NewSequence does not move seqs_ (sized once), but re-read anyway
  int64_t n_blocks = (n_tokens + config_.block_tokens - 1) / config_.block_tokens;
  for (int64_t i = 0; i < n_blocks; ++i) {
    int32_t b = src2.blocks[i];
    ++refcount_[b];
    dst.blocks.push_back(b);
  }
  dst.length = n_tokens;
  return child;
}

void KvCache::Free(int seq) {
  Sequence& s = Seq(seq);
  for (int32_t b : s.blocks) Release(b);
  s.blocks.clear();
  s.length = 0;
  s.live = false;
  free_seqs_.push_back(seq);
}

int64_t KvCache::Length(int seq) const { return Seq(seq).length; }

std::span<const int32_t> KvCache::BlockTable(int seq) const { return Seq(seq).blocks; }

bool KvCache::CanAppend(int seq, int64_t n) const {
  const Sequence& s = Seq(seq);
  if (n < 0 || s.length + n > config_.max_context) return false;
  int64_t have = static_cast<int64_t>(s.blocks.size());
  int64_t need = (s.length + n + config_.block_tokens - 1) / config_.block_tokens - have;
  // Writing into a shared, partly filled last block needs a private copy first.
  bool cow = n > 0 && s.length % config_.block_tokens != 0 && refcount_[s.blocks.back()] > 1;
  return need + (cow ? 1 : 0) <= free_blocks();
}

void KvCache::Append(int seq, int64_t n) {
  if (!(CanAppend(seq, n)))
    throw Error("kv cache: no room to append " + std::to_string(n) + " tokens to sequence " + std::to_string(seq) +
                " (" + std::to_string(free_blocks()) + " free blocks, length " + std::to_string(Length(seq)) + ")");
  Sequence& s = seqs_[seq];
  if (n == 0) return;
  if (s.length % config_.block_tokens != 0 && refcount_[s.blocks.back()] > 1) {
    int32_t copy = TakeBlock();
    CopyBlock(s.blocks.back(), copy);
    Release(s.blocks.back());
    s.blocks.back() = copy;
  }
  s.length += n;
  while (static_cast<int64_t>(s.blocks.size()) * config_.block_tokens < s.length) s.blocks.push_back(TakeBlock());
}

void KvCache::Truncate(int seq, int64_t length) {
  Sequence& s = Seq(seq);
  if (!(length >= 0 && length <= s.length)) throw Error("kv cache: truncate length out of range");
  int64_t keep = (length + config_.block_tokens - 1) / config_.block_tokens;
  while (static_cast<int64_t>(s.blocks.size()) > keep) {
    Release(s.blocks.back());
    s.blocks.pop_back();
  }
  s.length = length;
}

float* KvCache::KeyAt(int seq, int layer, int64_t pos) {
  const Sequence& s = Seq(seq);
  return Keys(s.blocks[pos / config_.block_tokens], layer) + (pos % config_.block_tokens) * kv_dim();
}
float* KvCache::ValueAt(int seq, int layer, int64_t pos) {
  const Sequence& s = Seq(seq);
  return Values(s.blocks[pos / config_.block_tokens], layer) + (pos % config_.block_tokens) * kv_dim();
}

int32_t KvCache::TakeBlock() {
  int32_t b = free_list_.back();
  free_list_.pop_back();
  refcount_[b] = 1;
  return b;
}

void KvCache::Release(int32_t block) {
  if (--refcount_[block] == 0) free_list_.push_back(block);
}

void KvCache::CopyBlock(int32_t from, int32_t to) {
  std::memcpy(pool_ + to * block_floats_, pool_ + from * block_floats_, block_bytes());
}

}  // namespace pensieve::backend

#pragma once
// Open-addressing hash tables for the BPE hot path (std::unordered_map's node per entry costs a cache miss
// per lookup). Both use linear probing over a power-of-two slot array.
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace pensieve::tok {

inline uint64_t HashBytes(std::string_view s) {
  // FNV-1a over 8-byte words, then a final mix: fast for the short keys (words) this is used on.
  uint64_t h = 0xcbf29ce484222325ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * 0x100000001b3ull;
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

// uint64 -> uint64; key ~0 is reserved as "empty".
class FlatMap64 {
 public:
  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, 0);
    mask_ = cap - 1;
  }
  // Inserts when absent; returns false when the key was already there (value unchanged).
  bool Insert(uint64_t key, uint64_t val) {
    if ((size_ + 1) * 2 > keys_.size()) Grow();
    size_t i = Mix(key) & mask_;
    while (keys_[i] != kEmpty) {
      if (keys_[i] == key) return false;
      i = (i + 1) & mask_;
    }
    keys_[i] = key;
    vals_[i] = val;
    ++size_;
    return true;
  }
  const uint64_t* Find(uint64_t key) const {
    if (keys_.empty()) return nullptr;
    size_t i = Mix(key) & mask_;
    while (keys_[i] != kEmpty) {
      if (keys_[i] == key) return &vals_[i];
      i = (i + 1) & mask_;
    }
    return nullptr;
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t Mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
  }
  void Grow() {
    std::vector<uint64_t> keys = std::move(keys_), vals = std::move(vals_);
    size_t old = keys.size();
    Reserve(old ? old : 8);
    size_ = 0;
    for (size_t i = 0; i < old; ++i)
      if (keys[i] != kEmpty) Insert(keys[i], vals[i]);
  }
  std::vector<uint64_t> keys_, vals_;
  size_t mask_ = 0, size_ = 0;
};

// Word -> token ids, bounded: when full it is cleared (a cache, not a store).
class WordCache {
 public:
  explicit WordCache(size_t max_entries) : max_entries_(max_entries) { Clear(); }

  // Appends the cached ids for word to out; false when absent.
  bool Lookup(std::string_view word, uint64_t h, std::vector<int32_t>& out) const {
    size_t i = h & mask_;
    while (slots_[i].len_plus1 != 0) {
      const Slot& s = slots_[i];
      if (s.hash == h && s.len_plus1 - 1 == word.size() &&
          std::memcmp(keys_.data() + s.key_off, word.data(), word.size()) == 0) {
        out.insert(out.end(), ids_.begin() + s.ids_off, ids_.begin() + s.ids_off + s.n_ids);
        return true;
      }
      i = (i + 1) & mask_;
    }
    return false;
  }

  void Insert(std::string_view word, uint64_t h, const int32_t* ids, size_t n) {
    if (size_ + 1 > max_entries_) Clear();
    size_t i = h & mask_;
    while (slots_[i].len_plus1 != 0) {
      if (slots_[i].hash == h && slots_[i].len_plus1 - 1 == word.size() &&
          std::memcmp(keys_.data() + slots_[i].key_off, word.data(), word.size()) == 0)
        return;
      i = (i + 1) & mask_;
    }
    Slot& s = slots_[i];
    s.hash = h;
    s.key_off = static_cast<uint32_t>(keys_.size());
    s.len_plus1 = static_cast<uint32_t>(word.size() + 1);
    s.ids_off = static_cast<uint32_t>(ids_.size());
    s.n_ids = static_cast<uint32_t>(n);
    keys_.insert(keys_.end(), word.begin(), word.end());
    ids_.insert(ids_.end(), ids, ids + n);
    ++size_;
  }

  void Clear() {
    size_t cap = 16;
    while (cap < max_entries_ * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    keys_.clear();
    ids_.clear();
    size_ = 0;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, len_plus1 = 0;  // len_plus1 == 0: empty slot
    uint32_t ids_off = 0, n_ids = 0;
  };
  size_t max_entries_;
  std::vector<Slot> slots_;
  std::vector<char> keys_;
  std::vector<int32_t> ids_;
  size_t mask_ = 0, size_ = 0;
};

}  // namespace pensieve::tok

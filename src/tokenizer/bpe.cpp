#include <algorithm>
#include <cstring>
#include <cstdio>
#include <queue>

#include "tokenizer/models.h"
#include "util/error.h"

namespace pensieve::tok {
namespace {

constexpr size_t kMaxCachedWord = 256;
constexpr char kMetaspace[] = "\xE2\x96\x81";

// One UTF-8 character (1-4 bytes) as a map key.
uint64_t CharKey(std::string_view ch) {
  uint64_t k = 0;
  std::memcpy(&k, ch.data(), ch.size());
  return k | (static_cast<uint64_t>(ch.size()) << 32);
}

size_t Utf8SeqLen(uint8_t b) { return b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1; }

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

void FillByteIds(const Vocab& vocab, int32_t* ids) {
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = vocab.find(std::string_view(name));
    ids[b] = it == vocab.end() ? -1 : it->second;
  }
}

}  // namespace

BpeModel::BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& where)
    : vocab_(std::move(vocab)), opt_(std::move(options)) {
  int32_t max_id = -1;
  for (const auto& [tok, id] : vocab_) {
    Require(id >= 0 && id < (1 << 30), where + ": vocabulary id " + std::to_string(id) + " of token '" + tok +
                                           "' is out of range");
    max_id = std::max(max_id, id);
  }
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  has_id_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [tok, id] : vocab_) {
    Require(!has_id_[id], where + ": vocabulary id " + std::to_string(id) + " is used twice");
    has_id_[id] = true;
    id_to_token_[id] = tok;
  }
  merges_.Reserve(merges.size());
  for (const auto& [tok, id] : vocab_) {
    if (!tok.empty() && tok.size() <= 4 && Utf8SeqLen(static_cast<uint8_t>(tok[0])) == tok.size())
      char_ids_.Insert(CharKey(tok), static_cast<uint64_t>(id));
  }
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    std::string merged = a;
    if (!opt_.continuing_subword_prefix.empty() &&
        b.compare(0, opt_.continuing_subword_prefix.size(), opt_.continuing_subword_prefix) == 0)
      merged += b.substr(opt_.continuing_subword_prefix.size());
    else
      merged += b;
    auto im = vocab_.find(merged);
    if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end())
      throw Error(where + ": merge #" + std::to_string(rank) + " '" + a + " " + b +
                  "' uses a token missing from the vocabulary");
    // The first (highest-priority) occurrence of a pair wins.
    merges_.Insert(PairKey(ia->second, ib->second),
                   (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(im->second));
  }
  if (opt_.unk_token) {
    auto it = vocab_.find(*opt_.unk_token);
    if (it != vocab_.end()) unk_id_ = it->second;
  }
  FillByteIds(vocab_, byte_ids_);
  if (vocab_.count(std::string(kMetaspace)) && opt_.continuing_subword_prefix.empty() &&
      opt_.end_of_word_suffix.empty() && !opt_.ignore_merges) {
    split_before_metaspace_ = true;
    for (const auto& [tok, id] : vocab_) {
      // Find U+2581 preceded by anything other than U+2581.
      for (size_t p = tok.find(kMetaspace, 1); p != std::string::npos; p = tok.find(kMetaspace, p + 1)) {
        if (p < 3 || tok.compare(p - 3, 3, kMetaspace) != 0) {
          split_before_metaspace_ = false;
          break;
        }
      }
      if (!split_before_metaspace_) break;
    }
  }
  all_bytes_ = std::all_of(byte_ids_, byte_ids_ + 256, [](int32_t v) { return v >= 0; });
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (split_before_metaspace_ && word.size() > 3) {
    size_t start = 0;
    for (size_t p = word.find(kMetaspace, 1); p != std::string_view::npos; p = word.find(kMetaspace, p + 3)) {
      if (p >= 3 && word.compare(p - 3, 3, kMetaspace) == 0) continue;  // inside a run of U+2581
      TokenizeChunk(word.substr(start, p - start), out);
      start = p;
    }
    TokenizeChunk(word.substr(start), out);
    return;
  }
  TokenizeChunk(word, out);
}

void BpeModel::TokenizeChunk(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= kMaxCachedWord;
  uint64_t h = 0;
  if (cacheable) {
    h = HashBytes(word);
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.Lookup(word, h, out)) return;
  }
  size_t start = out.size();
  std::optional<int32_t> whole;
  if (opt_.ignore_merges) whole = TokenToId(word);  // HF: a word that is a token is not merged at all
  if (whole) out.push_back(*whole); else MergeWord(word, out);
  if (!cacheable) return;
  std::lock_guard<std::mutex> lock(cache_mu_);
  cache_.Insert(word, h, out.data() + start, out.size() - start);
}

void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t id;
    int32_t prev, next;
  };
  std::vector<Sym> syms;
  syms.reserve(word.size());
  bool prev_unk = false;
  std::string scratch;
  size_t i = 0;
  while (i < word.size()) {
    size_t n = 1;
    uint8_t b = static_cast<uint8_t>(word[i]);
    if (b >= 0xF0) n = 4; else if (b >= 0xE0) n = 3; else if (b >= 0xC0) n = 2;
    n = std::min(n, word.size() - i);
    std::string_view ch = word.substr(i, n);
    bool first = i == 0, last = i + n == word.size();
    std::optional<int32_t> id;
    if (opt_.continuing_subword_prefix.empty() && opt_.end_of_word_suffix.empty()) {
      if (const uint64_t* v = char_ids_.Find(CharKey(ch))) id = static_cast<int32_t>(*v);
    } else {
      scratch.clear();
      if (!first) scratch += opt_.continuing_subword_prefix;
      scratch += ch;
      if (last) scratch += opt_.end_of_word_suffix;
      auto it = vocab_.find(scratch);
      if (it != vocab_.end()) id = it->second;
    }
    if (id) {
      syms.push_back({*id, 0, 0});
      prev_unk = false;
    } else {
      bool done = false;
      if (opt_.byte_fallback) {
        bool ok = true;
        for (char c : ch) ok = ok && byte_ids_[static_cast<uint8_t>(c)] >= 0;
        if (ok) {
          for (char c : ch) syms.push_back({byte_ids_[static_cast<uint8_t>(c)], 0, 0});
          prev_unk = false;
          done = true;
        }
      }
      if (!done && unk_id_) {
        if (!(opt_.fuse_unk && prev_unk)) syms.push_back({*unk_id_, 0, 0});
        prev_unk = true;
      }
    }
    i += n;
  }
  const int32_t n_syms = static_cast<int32_t>(syms.size());
  for (int32_t k = 0; k < n_syms; ++k) {
    syms[k].prev = k - 1;
    syms[k].next = k + 1 < n_syms ? k + 1 : -1;
  }
  struct Cand {
    uint32_t rank;
    int32_t left;
    int32_t left_id, right_id, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
  auto push = [&](int32_t left) {
    int32_t right = syms[left].next;
    if (right < 0) return;
    const uint64_t* m = merges_.Find(PairKey(syms[left].id, syms[right].id));
    if (!m) return;
    queue.push({static_cast<uint32_t>(*m >> 32), left, syms[left].id, syms[right].id,
                static_cast<int32_t>(*m & 0xFFFFFFFFu)});
  };
  for (int32_t k = 0; k + 1 < n_syms; ++k) push(k);
  while (!queue.empty()) {
    Cand c = queue.top();
    queue.pop();
    Sym& l = syms[c.left];
    if (l.id != c.left_id || l.next < 0) continue;  // left was merged away or changed
    Sym& r = syms[l.next];
    if (r.id != c.right_id) continue;
    // Merge right into left.
    l.id = c.new_id;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    r.id = -1;  // dead
    if (l.prev >= 0) push(l.prev);
    push(c.left);
  }
  for (int32_t k = n_syms > 0 ? 0 : -1; k >= 0; k = syms[k].next) out.push_back(syms[k].id);
}

}  // namespace pensieve::tok

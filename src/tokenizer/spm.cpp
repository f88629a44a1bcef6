#include <cstdio>
#include <queue>

#include "tokenizer/models.h"
#include "util/error.h"

namespace pensieve::tok {

SpmModel::SpmModel(std::vector<std::string> pieces, std::vector<float> scores, std::optional<int32_t> unk_id,
                   const std::string& where)
    : pieces_(std::move(pieces)), scores_(std::move(scores)), unk_id_(unk_id) {
  Require(scores_.empty() || scores_.size() == pieces_.size(),
          where + ": " + std::to_string(scores_.size()) + " scores for " + std::to_string(pieces_.size()) +
              " tokens");
  if (scores_.empty()) scores_.assign(pieces_.size(), 0.0f);
  vocab_.reserve(pieces_.size());
  for (size_t i = 0; i < pieces_.size(); ++i) vocab_.emplace(pieces_[i], static_cast<int32_t>(i));  // first wins
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  if (unk_id_ && (*unk_id_ < 0 || *unk_id_ >= size()))
    throw Error(where + ": unknown token id " + std::to_string(*unk_id_) + " out of range");
}

std::optional<int32_t> SpmModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* SpmModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= size()) return nullptr;
  return &pieces_[id];
}

// Greedy merging: repeatedly join the adjacent pair whose concatenation is a vocabulary piece with the highest
// score (ties: leftmost), as sentencepiece's BPE encoder does; then emit pieces, bytes for unknown characters.
void SpmModel::Tokenize(std::string_view text, std::vector<int32_t>& out) const {
  struct Sym {
    size_t begin, len;
    int32_t prev, next;
  };
  std::vector<Sym> syms;
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    uint8_t b = static_cast<uint8_t>(text[i]);
    if (b >= 0xF0) n = 4; else if (b >= 0xE0) n = 3; else if (b >= 0xC0) n = 2;
    n = std::min(n, text.size() - i);
    int32_t k = static_cast<int32_t>(syms.size());
    syms.push_back({i, n, k - 1, -1});
    if (k > 0) syms[k - 1].next = k;
    i += n;
  }
  struct Cand {
    float score;
    int32_t left, right;
    size_t len;
    bool operator<(const Cand& o) const {  // max-heap on score, then leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Cand> queue;
  auto push = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    size_t len = syms[left].len + syms[right].len;
    auto it = vocab_.find(text.substr(syms[left].begin, len));
    if (it == vocab_.end()) return;
    queue.push({scores_[it->second], left, right, len});
  };
  for (int32_t k = 1; k < static_cast<int32_t>(syms.size()); ++k) push(k - 1, k);
  while (!queue.empty()) {
    Cand c = queue.top();
    queue.pop();
    Sym& l = syms[c.left];
    Sym& r = syms[c.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.len || l.next != c.right) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    push(l.prev, c.left);
    push(c.left, l.next);
  }
  for (int32_t k = syms.empty() ? -1 : 0; k >= 0; k = syms[k].next) {
    std::string_view piece = text.substr(syms[k].begin, syms[k].len);
    auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      continue;
    }
    bool bytes_ok = true;
    for (char ch : piece) bytes_ok = bytes_ok && byte_ids_[static_cast<uint8_t>(ch)] >= 0;
    if (bytes_ok) {
      for (char ch : piece) out.push_back(byte_ids_[static_cast<uint8_t>(ch)]);
    } else if (unk_id_) {
      out.push_back(*unk_id_);
    }
  }
}

}  // namespace pensieve::tok

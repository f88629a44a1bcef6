#include "engine/token_bytes.h"

#include <algorithm>
#include <span>

#include "util/error.h"
#include "util/utf8.h"

namespace pensieve::engine {
namespace {

// Well-formed UTF-8 (RFC 3629), complete, without U+FFFD (what decoders write for bytes they cannot show).
bool CleanUtf8(std::string_view s) {
  if (s.find("\xEF\xBF\xBD") != std::string_view::npos) return false;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    utf8::Lead lead;
    if (!utf8::ParseLead(c, &lead)) return false;
    const int n = lead.continuation;
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      unsigned char b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lead.first_lo : 0x80) || b > (k == 1 ? lead.first_hi : 0xBF)) return false;
    }
    i += n + 1;
  }
  return true;
}

bool PlainString(std::string_view s) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == '"' || c == '\\') return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<const TokenBytes> TokenBytes::Build(const Tokenizer& tokenizer, int vocab) {
  Require(vocab > 0, "token bytes: vocabulary size must be positive");
  auto t = std::make_shared<TokenBytes>();
  const int known = std::min<int>(vocab, tokenizer.vocab_size());
  // Anchor: a plain token decoded before each one, so leading spaces survive (SentencePiece strips them at
  // the start of a decode).
  std::vector<int32_t> a = tokenizer.Encode("a", /*add_special=*/false, /*parse_special=*/false);
  const bool anchored = a.size() == 1;
  const std::string base = anchored ? tokenizer.Decode(a, false) : "";
  t->offsets_.reserve(vocab + 1);
  t->flags_.assign(vocab, 0);
  t->offsets_.push_back(0);
  int32_t pair[2] = {anchored ? a[0] : 0, 0};
  for (int id = 0; id < vocab; ++id) {
    if (id < known) {
      pair[1] = id;
      std::string s;
      if (anchored) {
        s = tokenizer.Decode(std::span<const int32_t>(pair, 2), false);
        s = s.compare(0, base.size(), base) == 0 ? s.substr(base.size()) : std::string();
      } else {
        s = tokenizer.Decode(std::span<const int32_t>(&pair[1], 1), false);
      }
      if (!s.empty() && CleanUtf8(s)) {
        t->flags_[id] = kUsable | (tokenizer.IsSpecial(id) ? kSpecial : 0);
        t->data_ += s;
      }
    }
    t->offsets_.push_back(static_cast<uint32_t>(t->data_.size()));
  }
  t->Finish();
  return t;
}

std::shared_ptr<const TokenBytes> TokenBytes::FromStrings(const std::vector<std::string>& bytes,
                                                          const std::vector<bool>& special) {
  auto t = std::make_shared<TokenBytes>();
  t->offsets_.push_back(0);
  for (size_t i = 0; i < bytes.size(); ++i) {
    bool sp = i < special.size() && special[i];
    t->flags_.push_back(bytes[i].empty() ? 0 : static_cast<uint8_t>(kUsable | (sp ? kSpecial : 0)));
    t->data_ += bytes[i];
    t->offsets_.push_back(static_cast<uint32_t>(t->data_.size()));
  }
  t->Finish();
  return t;
}

void TokenBytes::Finish() {
  by_bytes_.reserve(flags_.size());
  for (int32_t id = 0; id < size(); ++id) {
    if (!(flags_[id] & kUsable)) continue;
    std::string_view b = bytes(id);
    max_length_ = std::max(max_length_, b.size());
    if (!(flags_[id] & kSpecial) && PlainString(b) && CleanUtf8(b)) flags_[id] |= kPlainString;
    auto [it, inserted] = by_bytes_.emplace(b, id);
    // Markup is written with the model's own special token when it has one.
    if (!inserted && (flags_[id] & kSpecial) && !(flags_[it->second] & kSpecial)) it->second = id;
  }
}

int32_t TokenBytes::LongestPrefixToken(std::string_view text) const {
  for (size_t n = std::min(text.size(), max_length_); n > 0; --n) {
    auto it = by_bytes_.find(text.substr(0, n));
    if (it != by_bytes_.end()) return it->second;
  }
  return -1;
}

}  // namespace pensieve::engine

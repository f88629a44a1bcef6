#include "tokenizer/pipeline_tokenizer.h"

#include <algorithm>
#include <unordered_map>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace pensieve::tok {
namespace {

struct Span {
  size_t begin, end;
  int32_t id;
};

// Leftmost-longest matching of added tokens, with HF's lstrip/rstrip/single_word rules.
class AddedMatcher {
 public:
  AddedMatcher(const std::vector<AddedToken>& tokens, bool normalized_pass) : tokens_(tokens) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i].content.empty() || tokens[i].normalized != normalized_pass) continue;
      by_first_[static_cast<uint8_t>(tokens[i].content[0])].push_back(i);
    }
    for (auto& v : by_first_)
      std::stable_sort(v.begin(), v.end(),
                       [&](size_t a, size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
    for (const auto& v : by_first_) any_ = any_ || !v.empty();
  }

  bool empty() const { return !any_; }

  void Find(std::string_view text, bool parse_special, std::vector<Span>& out) const {
    size_t prev_end = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      const auto& cands = by_first_[static_cast<uint8_t>(text[pos])];
      const AddedToken* hit = nullptr;
      for (size_t idx : cands) {
        const AddedToken& t = tokens_[idx];
        if (t.special && !parse_special) continue;
        if (text.compare(pos, t.content.size(), t.content) != 0) continue;
        if (t.single_word && !IsSingleWord(text, pos, pos + t.content.size())) continue;
        hit = &t;
        break;
      }
      if (!hit) {
        ++pos;
        continue;
      }
      size_t b = pos, e = pos + hit->content.size();
      if (hit->lstrip) {
        while (b > prev_end) {
          size_t s = b - 1;
          while (s > prev_end && (static_cast<uint8_t>(text[s]) & 0xC0) == 0x80) --s;
          size_t i = s;
          if (!IsWhitespace(NextCodePoint(text, i))) break;
          b = s;
        }
      }
      if (hit->rstrip) {
        while (e < text.size()) {
          size_t i = e;
          if (!IsWhitespace(NextCodePoint(text, i))) break;
          e = i;
        }
      }
      out.push_back({b, e, hit->id});
      prev_end = e;
      pos = e;
    }
  }

 private:
  static bool IsWordChar(uint32_t cp) { return cp == '_' || IsAlphanumeric(cp); }
  static bool IsSingleWord(std::string_view text, size_t b, size_t e) {
    if (b > 0) {
      size_t s = b - 1;
      while (s > 0 && (static_cast<uint8_t>(text[s]) & 0xC0) == 0x80) --s;
      size_t i = s;
      if (IsWordChar(NextCodePoint(text, i))) return false;
    }
    if (e < text.size()) {
      size_t i = e;
      if (IsWordChar(NextCodePoint(text, i))) return false;
    }
    return true;
  }

  const std::vector<AddedToken>& tokens_;
  std::vector<size_t> by_first_[256];
  bool any_ = false;
};

class PipelineTokenizer : public Tokenizer {
 public:
  explicit PipelineTokenizer(TokenizerParts p)
      : p_(std::move(p)),
        norm_added_(NormalizedContents(p_)),
        raw_matcher_(p_.added, false),
        norm_matcher_(norm_added_, true) {
    int32_t size = p_.model->size();
    for (const AddedToken& t : p_.added) {
      Require(t.id >= 0, p_.source + ": added token '" + t.content + "' has a negative id");
      size = std::max(size, t.id + 1);
      added_by_id_[t.id] = &t;
      added_by_content_.emplace(t.content, t.id);
    }
    vocab_size_ = size;
    if (p_.pre_tokenizer) byte_level_regex_ = p_.pre_tokenizer->ByteLevelRegex();
    auto check = [&](const std::vector<int32_t>& ids) {
      for (int32_t id : ids)
        Require(id >= 0 && id < vocab_size_, p_.source + ": post-processor id " + std::to_string(id) +
                                                 " is outside the vocabulary");
    };
    check(p_.prefix_ids);
    check(p_.suffix_ids);
  }

  std::vector<int32_t> Encode(std::string_view input, bool add_special, bool parse_special) const override {
    std::string repaired;
    if (!IsValidUtf8(input)) {
      repaired = Utf8Lossy(input);
      input = repaired;
    }
    std::vector<int32_t> ids;
    ids.reserve(input.size() / 3 + 4);
    if (add_special) ids.insert(ids.end(), p_.prefix_ids.begin(), p_.prefix_ids.end());
    std::vector<Span> spans;
    if (!raw_matcher_.empty()) raw_matcher_.Find(input, parse_special, spans);
    size_t last = 0;
    for (const Span& s : spans) {
      if (s.begin > last) EncodeRaw(input.substr(last, s.begin - last), last == 0, parse_special, ids);
      ids.push_back(s.id);
      last = s.end;
    }
    if (last < input.size()) EncodeRaw(input.substr(last), last == 0, parse_special, ids);
    if (add_special) ids.insert(ids.end(), p_.suffix_ids.begin(), p_.suffix_ids.end());
    return ids;
  }

  std::string Decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      auto it = added_by_id_.find(id);
      if (it != added_by_id_.end()) {
        if (skip_special && it->second->special) continue;
        tokens.push_back(it->second->content);
        continue;
      }
      if (const std::string* t = p_.model->IdToToken(id)) tokens.push_back(*t);
    }
    std::string text;
    if (p_.decoder) {
      p_.decoder->Apply(tokens);
      for (const std::string& t : tokens) text += t;
    } else {
      for (size_t i = 0; i < tokens.size(); ++i) {
        if (i) text += ' ';
        text += tokens[i];
      }
    }
    if (p_.clean_up_spaces) text = CleanUpTokenizationSpaces(std::move(text));
    return text;
  }

  int32_t vocab_size() const override { return vocab_size_; }

  std::optional<int32_t> TokenId(std::string_view token) const override {
    auto it = added_by_content_.find(token);
    if (it != added_by_content_.end()) return it->second;
    return p_.model->TokenToId(token);
  }

  std::string TokenText(int32_t id) const override {
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) return it->second->content;
    const std::string* t = p_.model->IdToToken(id);
    return t ? *t : std::string();
  }

  bool IsSpecial(int32_t id) const override {
    auto it = added_by_id_.find(id);
    return it != added_by_id_.end() && it->second->special;
  }
  std::optional<int32_t> bos_id() const override { return p_.bos_id; }
  std::optional<int32_t> eos_id() const override { return p_.eos_id; }
  std::string bos_token() const override { return p_.bos_token; }
  std::string eos_token() const override { return p_.eos_token; }

 private:
  // Text between raw-matched added tokens: normalize, match normalized added tokens, pre-tokenize, model.
  void EncodeRaw(std::string_view text, bool at_start, bool parse_special, std::vector<int32_t>& ids) const {
    std::string s(text);
    if (p_.normalizer) p_.normalizer->Apply(s);
    if (s.empty()) return;
    if (norm_matcher_.empty()) {
      EncodeNormalized(std::move(s), at_start, ids);
      return;
    }
    std::vector<Span> spans;
    norm_matcher_.Find(s, parse_special, spans);
    size_t last = 0;
    for (const Span& sp : spans) {
      if (sp.begin > last) EncodeNormalized(s.substr(last, sp.begin - last), at_start && last == 0, ids);
      ids.push_back(sp.id);
      last = sp.end;
    }
    if (last < s.size()) EncodeNormalized(s.substr(last), at_start && last == 0, ids);
  }

  void EncodeNormalized(std::string s, bool at_start, std::vector<int32_t>& ids) const {
    if (byte_level_regex_) {
      // Copy-free path: regex pieces (matches and the gaps between them) mapped into one reused buffer.
      thread_local std::vector<std::pair<size_t, size_t>> matches;
      thread_local std::string word;
      matches.clear();
      byte_level_regex_->FindAll(s, matches);
      auto emit = [&](size_t b, size_t e) {
        word.clear();
        AppendByteLevel(word, std::string_view(s).substr(b, e - b));
        p_.model->Tokenize(word, ids);
      };
      size_t last = 0;
      for (auto [b, e] : matches) {
        if (b > last) emit(last, b);
        emit(b, e);
        last = e;
      }
      if (last < s.size()) emit(last, s.size());
      return;
    }
    if (!p_.pre_tokenizer) {
      p_.model->Tokenize(s, ids);
      return;
    }
    std::vector<Piece> pieces;
    pieces.push_back({std::move(s), at_start});
    p_.pre_tokenizer->Apply(pieces);
    for (const Piece& piece : pieces) p_.model->Tokenize(piece.text, ids);
  }

  // HF matches `normalized` added tokens by their content passed through the normalizer.
  static std::vector<AddedToken> NormalizedContents(const TokenizerParts& p) {
    std::vector<AddedToken> out;
    for (const AddedToken& t : p.added) {
      if (!t.normalized) continue;
      out.push_back(t);
      if (p.normalizer) p.normalizer->Apply(out.back().content);
    }
    return out;
  }

  TokenizerParts p_;
  std::vector<AddedToken> norm_added_;
  AddedMatcher raw_matcher_, norm_matcher_;
  std::unordered_map<int32_t, const AddedToken*> added_by_id_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> added_by_content_;
  int32_t vocab_size_ = 0;
  const Regex* byte_level_regex_ = nullptr;  // see PreTokenizer::ByteLevelRegex
};

}  // namespace

std::unique_ptr<Tokenizer> MakePipelineTokenizer(TokenizerParts parts) {
  Require(parts.model != nullptr, parts.source + ": no model");
  return std::make_unique<PipelineTokenizer>(std::move(parts));
}

}  // namespace pensieve::tok

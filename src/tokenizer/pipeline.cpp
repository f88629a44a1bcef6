#include "tokenizer/pipeline.h"

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace pensieve::tok {

void ReplaceAll(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  size_t pos = s.find(from);
  if (pos == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t last = 0;
  while (pos != std::string::npos) {
    out.append(s, last, pos - last);
    out.append(to);
    last = pos + from.size();
    pos = s.find(from, last);
  }
  out.append(s, last, std::string::npos);
  s = std::move(out);
}

std::string CleanUpTokenizationSpaces(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) ReplaceAll(s, from, to);
  return s;
}

// ---------------------------------------------------------------- normalizers

void SequenceNormalizer::Apply(std::string& s) const {
  for (const auto& p : parts_) p->Apply(s);
}

void UnicodeNormalizer::Apply(std::string& s) const { s = NormalizeUnicode(s, static_cast<NormalForm>(form_)); }

void LowercaseNormalizer::Apply(std::string& s) const { s = Lowercase(s); }

void PrependNormalizer::Apply(std::string& s) const {
  if (!s.empty()) s.insert(0, prefix_);
}

ReplaceNormalizer::ReplaceNormalizer(std::string pattern, bool regex, std::string content)
    : pattern_(std::move(pattern)), content_(std::move(content)) {
  if (regex) regex_ = std::make_unique<Regex>(pattern_);
}

void ReplaceNormalizer::Apply(std::string& s) const {
  if (!regex_) {
    ReplaceAll(s, pattern_, content_);
    return;
  }
  std::vector<std::pair<size_t, size_t>> m;
  regex_->FindAll(s, m);
  if (m.empty()) return;
  std::string out;
  size_t last = 0;
  for (auto [b, e] : m) {
    out.append(s, last, b - last);
    out.append(content_);
    last = e;
  }
  out.append(s, last, std::string::npos);
  s = std::move(out);
}

void StripNormalizer::Apply(std::string& s) const {
  size_t b = 0, e = s.size();
  if (left_) {
    while (b < e) {
      size_t i = b;
      if (!IsWhitespace(NextCodePoint(s, i))) break;
      b = i;
    }
  }
  if (right_) {
    while (e > b) {
      size_t start = e - 1;
      while (start > b && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
      size_t i = start;
      if (!IsWhitespace(NextCodePoint(s, i))) break;
      e = start;
    }
  }
  s = s.substr(b, e - b);
}

// ---------------------------------------------------------------- pre-tokenizers

void SequencePreTokenizer::Apply(std::vector<Piece>& pieces) const {
  for (const auto& p : parts_) p->Apply(pieces);
}

const Regex* SequencePreTokenizer::ByteLevelRegex() const {
  if (parts_.size() == 1) return parts_[0]->ByteLevelRegex();
  if (parts_.size() != 2) return nullptr;
  auto* split = dynamic_cast<const SplitPreTokenizer*>(parts_[0].get());
  auto* bl = dynamic_cast<const ByteLevelPreTokenizer*>(parts_[1].get());
  if (!split || !bl || !bl->IsPlainMapping()) return nullptr;
  return split->IsolatingRegex();
}

namespace {

// Splits each piece at the given ranges (sorted, disjoint) following `behavior`; appends to out.
void SplitAt(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
             bool invert, std::vector<Piece>& out) {
  const std::string& s = piece.text;
  // Segments: (begin, end, is_match).
  struct Seg {
    size_t b, e;
    bool match;
  };
  std::vector<Seg> segs;
  size_t last = 0;
  for (auto [b, e] : matches) {
    if (b > last) segs.push_back({last, b, invert});
    segs.push_back({b, e, !invert});
    last = e;
  }
  if (last < s.size()) segs.push_back({last, s.size(), invert});
  auto emit = [&](size_t b, size_t e) {
    if (e > b) out.push_back({s.substr(b, e - b), piece.at_start && b == 0});
  };
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Seg& g : segs) emit(g.b, g.e);
      break;
    case SplitBehavior::kRemoved:
      for (const Seg& g : segs)
        if (!g.match) emit(g.b, g.e);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      size_t start = 0;
      bool open = false;
      for (const Seg& g : segs) {
        if (g.match) {
          emit(open ? start : g.b, g.e);
          open = false;
        } else {
          if (open) emit(start, g.b);
          start = g.b;
          open = true;
        }
      }
      if (open) emit(start, s.size());
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      size_t start = 0;
      bool open = false;
      for (const Seg& g : segs) {
        if (g.match) {
          if (open) emit(start, g.b);
          start = g.b;
          open = true;
        } else {
          emit(open ? start : g.b, g.e);
          open = false;
        }
      }
      if (open) emit(start, s.size());
      break;
    }
    case SplitBehavior::kContiguous: {
      size_t i = 0;
      while (i < segs.size()) {
        size_t j = i;
        if (segs[i].match)
          while (j + 1 < segs.size() && segs[j + 1].match) ++j;
        emit(segs[i].b, segs[j].e);
        i = j + 1;
      }
      break;
    }
  }
}

void LiteralMatches(const std::string& s, const std::string& lit, std::vector<std::pair<size_t, size_t>>& m) {
  if (lit.empty()) return;
  for (size_t p = s.find(lit); p != std::string::npos; p = s.find(lit, p + lit.size()))
    m.emplace_back(p, p + lit.size());
}

const char kGpt2Pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

}  // namespace

SplitPreTokenizer::SplitPreTokenizer(const std::string& pattern, bool regex, SplitBehavior behavior, bool invert)
    : behavior_(behavior), invert_(invert) {
  if (regex) regex_ = std::make_unique<Regex>(pattern); else literal_ = pattern;
}

void SplitPreTokenizer::Apply(std::vector<Piece>& pieces) const {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 4);
  std::vector<std::pair<size_t, size_t>> m;
  for (const Piece& p : pieces) {
    m.clear();
    if (regex_) regex_->FindAll(p.text, m); else LiteralMatches(p.text, literal_, m);
    SplitAt(p, m, behavior_, invert_, out);
  }
  pieces = std::move(out);
}

ByteLevelPreTokenizer::ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
    : add_prefix_space_(add_prefix_space) {
  if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern);
}

void ByteLevelPreTokenizer::Apply(std::vector<Piece>& pieces) const {
  std::vector<Piece> out;
  out.reserve(pieces.size() * (regex_ ? 4 : 1));
  std::vector<std::pair<size_t, size_t>> m;
  for (Piece& p : pieces) {
    if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
    if (regex_) {
      m.clear();
      regex_->FindAll(p.text, m);
      SplitAt(p, m, SplitBehavior::kIsolated, false, out);
    } else {
      out.push_back(std::move(p));
    }
  }
  for (Piece& p : out) {
    std::string mapped;
    mapped.reserve(p.text.size() * 2);
    AppendByteLevel(mapped, p.text);
    p.text = std::move(mapped);
  }
  pieces = std::move(out);
}

void MetaspacePreTokenizer::Apply(std::vector<Piece>& pieces) const {
  std::vector<Piece> out;
  std::vector<std::pair<size_t, size_t>> m;
  for (Piece& p : pieces) {
    ReplaceAll(p.text, " ", replacement_);
    bool starts = p.text.compare(0, replacement_.size(), replacement_) == 0;
    if (!starts && (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_start)))
      p.text.insert(0, replacement_);
    if (split_) {
      m.clear();
      LiteralMatches(p.text, replacement_, m);
      SplitAt(p, m, SplitBehavior::kMergedWithNext, false, out);
    } else {
      out.push_back(std::move(p));
    }
  }
  pieces = std::move(out);
}

void DigitsPreTokenizer::Apply(std::vector<Piece>& pieces) const {
  static const Regex single("\\p{N}"), runs("\\p{N}+");
  const Regex& r = individual_ ? single : runs;
  std::vector<Piece> out;
  std::vector<std::pair<size_t, size_t>> m;
  for (const Piece& p : pieces) {
    m.clear();
    r.FindAll(p.text, m);
    SplitAt(p, m, SplitBehavior::kIsolated, false, out);
  }
  pieces = std::move(out);
}

WhitespacePreTokenizer::WhitespacePreTokenizer(bool split_only)
    : regex_(std::make_unique<Regex>(split_only ? "\\S+" : "\\w+|[^\\w\\s]+")) {}

void WhitespacePreTokenizer::Apply(std::vector<Piece>& pieces) const {
  std::vector<Piece> out;
  std::vector<std::pair<size_t, size_t>> m;
  for (const Piece& p : pieces) {
    m.clear();
    regex_->FindAll(p.text, m);
    SplitAt(p, m, SplitBehavior::kRemoved, true, out);
  }
  pieces = std::move(out);
}

// ---------------------------------------------------------------- decoders

void SequenceDecoder::Apply(std::vector<std::string>& tokens) const {
  for (const auto& p : parts_) p->Apply(tokens);
}

void ByteLevelDecoder::Apply(std::vector<std::string>& tokens) const {
  std::string bytes;
  for (const std::string& t : tokens) {
    size_t start = bytes.size();
    bool ok = true;
    size_t i = 0;
    while (i < t.size()) {
      int b = ByteLevelByte(NextCodePoint(t, i));
      if (b < 0) {
        ok = false;
        break;
      }
      bytes.push_back(static_cast<char>(b));
    }
    if (!ok) {  // not in the byte-level alphabet (e.g. an added token with a space): keep its bytes as they are
      bytes.resize(start);
      bytes.append(t);
    }
  }
  tokens.assign(1, Utf8Lossy(bytes));
}

void MetaspaceDecoder::Apply(std::vector<std::string>& tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    // As HF does: in the first token every replacement character is dropped (not only the leading one).
    ReplaceAll(tokens[i], replacement_, i == 0 && strip_first_ ? "" : " ");
  }
}

namespace {
int ParseByteToken(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int h = hex(t[3]), l = hex(t[4]);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}
}  // namespace

void ByteFallbackDecoder::Apply(std::vector<std::string>& tokens) const {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string pending;
  size_t n_pending = 0;
  auto flush = [&] {
    if (n_pending == 0) return;
    if (IsValidUtf8(pending)) {
      out.push_back(pending);
    } else {
      std::string r;
      for (size_t k = 0; k < n_pending; ++k) r += "\xEF\xBF\xBD";
      out.push_back(r);
    }
    pending.clear();
    n_pending = 0;
  };
  for (std::string& t : tokens) {
    int b = ParseByteToken(t);
    if (b >= 0) {
      pending.push_back(static_cast<char>(b));
      ++n_pending;
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  tokens = std::move(out);
}

void FuseDecoder::Apply(std::vector<std::string>& tokens) const {
  std::string all;
  for (const std::string& t : tokens) all += t;
  tokens.assign(1, std::move(all));
}

void StripDecoder::Apply(std::vector<std::string>& tokens) const {
  if (content_.empty()) return;
  for (std::string& t : tokens) {
    size_t b = 0, e = t.size();
    for (size_t k = 0; k < start_ && e - b >= content_.size() && t.compare(b, content_.size(), content_) == 0; ++k)
      b += content_.size();
    for (size_t k = 0; k < stop_ && e - b >= content_.size() &&
                       t.compare(e - content_.size(), content_.size(), content_) == 0;
         ++k)
      e -= content_.size();
    t = t.substr(b, e - b);
  }
}

ReplaceDecoder::ReplaceDecoder(std::string pattern, bool regex, std::string content)
    : impl_(std::move(pattern), regex, std::move(content)) {}

void ReplaceDecoder::Apply(std::vector<std::string>& tokens) const {
  for (std::string& t : tokens) impl_.Apply(t);
}

void WordPieceDecoder::Apply(std::vector<std::string>& tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string& t = tokens[i];
    if (i != 0) {
      if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size()); else t.insert(0, " ");
    }
    if (cleanup_) t = CleanUpTokenizationSpaces(t);
  }
}

}  // namespace pensieve::tok

#include "chat/jinja/lexer.h"

#include <algorithm>

#include "chat/jinja/error.h"
#include "chat/jinja/pystr.h"

namespace pensieve::jinja {
namespace {

// Jinja2 splits the source on \r\n, \r and \n, joins with \n, and drops one trailing newline
// (keep_trailing_newline=False).
std::string NormalizeNewlines(const std::string& src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out.push_back(src[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool IsAsciiSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

class Lexer {
 public:
  Lexer(const std::string& source, const LexOptions& options) : src_(NormalizeNewlines(source)), opt_(options) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> Run() {
    size_t pos = 0;
    const size_t n = src_.size();
    while (pos < n) {
      size_t start = FindTagStart(pos);
      if (start == std::string::npos) {
        Emit(Tok::kText, src_.substr(pos), pos);
        break;
      }
      char kind = src_[start + 1];
      size_t p = start + 2;
      char mod = (p < n && (src_[p] == '-' || src_[p] == '+')) ? src_[p] : 0;
      std::string text = src_.substr(pos, start - pos);
      ApplyLeadingWhitespace(text, pos, kind, mod);
      if (!text.empty()) Emit(Tok::kText, std::move(text), pos);
      if (mod) ++p;
      if (kind == '#') {
        pos = SkipComment(start, p);
      } else if (kind == '%' && IsRawBegin(p)) {
        pos = LexRaw(start, p);
      } else {
        pos = LexTag(start, p, kind);
      }
    }
    tokens_.push_back(Token{Tok::kEof, "", Line(src_.size()), Column(src_.size())});
    return std::move(tokens_);
  }

 private:
  int Line(size_t pos) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos);
    return static_cast<int>(it - line_starts_.begin());
  }
  int Column(size_t pos) const { return static_cast<int>(pos - line_starts_[Line(pos) - 1]) + 1; }

  [[noreturn]] void Fail(const std::string& msg, size_t pos) const {
    throw JinjaError("TemplateSyntaxError", msg, Line(pos), Column(pos));
  }

  void Emit(Tok t, std::string text, size_t pos) { tokens_.push_back(Token{t, std::move(text), Line(pos), Column(pos)}); }

  size_t FindTagStart(size_t pos) const {
    while (true) {
      size_t f = src_.find('{', pos);
      if (f == std::string::npos || f + 1 >= src_.size()) return std::string::npos;
      char c = src_[f + 1];
      if (c == '{' || c == '%' || c == '#') return f;
      pos = f + 1;
    }
  }

  // `-` strips all whitespace before the tag; otherwise lstrip_blocks strips spaces and tabs between the
  // line start and a block or comment tag (not `{{`), unless the tag says `+`.
  void ApplyLeadingWhitespace(std::string& text, size_t text_pos, char kind, char mod) const {
    if (mod == '-') {
      text = pystr::Strip(text, std::nullopt, false, true);
      return;
    }
    if (mod == '+' || !opt_.lstrip_blocks || kind == '{') return;
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    bool line_starting = text_pos == 0 || src_[text_pos - 1] == '\n';
    if (l_pos == 0 && !line_starting) return;
    if (l_pos == text.size()) return;
    for (size_t i = l_pos; i < text.size(); ++i)
      if (!IsAsciiSpace(text[i])) return;
    text.resize(l_pos);
  }

  // After a tag's closing delimiter: `-` eats following whitespace, trim_blocks eats one newline after
  // block and comment tags unless the tag ends with `+`.
  size_t AfterEnd(size_t pos, char end_mod, bool is_block_or_comment) const {
    if (end_mod == '-') return SkipWhitespace(pos);
    if (end_mod == '+' || !is_block_or_comment || !opt_.trim_blocks) return pos;
    if (pos < src_.size() && src_[pos] == '\n') return pos + 1;
    return pos;
  }

  size_t SkipWhitespace(size_t pos) const {
    while (pos < src_.size()) {
      unsigned char c = static_cast<unsigned char>(src_[pos]);
      if (c < 0x80) {
        if (!IsAsciiSpace(static_cast<char>(c)) && !(c >= 0x1c && c <= 0x1f)) break;
        ++pos;
        continue;
      }
      // Multi-byte: decode one code point and test Python whitespace.
      size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
      std::u32string u = pystr::Decode(std::string_view(src_).substr(pos, len));
      if (u.size() != 1 || !pystr::IsSpace(u[0])) break;
      pos += len;
    }
    return pos;
  }

  size_t SkipComment(size_t start, size_t p) {
    size_t f = src_.find("#}", p);
    if (f == std::string::npos) Fail("Missing end of comment tag", start);
    char end_mod = (f > p && (src_[f - 1] == '-' || src_[f - 1] == '+')) ? src_[f - 1] : 0;
    return AfterEnd(f + 2, end_mod, true);
  }

  // {% raw %} ... {% endraw %}: `p` is just after `{%` and its marker.
  bool IsRawBegin(size_t p) const {
    size_t q = p;
    while (q < src_.size() && IsAsciiSpace(src_[q])) ++q;
    if (src_.compare(q, 3, "raw") != 0) return false;
    q += 3;
    if (q < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) return false;
    while (q < src_.size() && IsAsciiSpace(src_[q])) ++q;
    return src_.compare(q, 2, "%}") == 0 || src_.compare(q, 3, "-%}") == 0 || src_.compare(q, 3, "+%}") == 0;
  }

  size_t LexRaw(size_t start, size_t p) {
    size_t q = src_.find("%}", p);
    char end_mod = (src_[q - 1] == '-' || src_[q - 1] == '+') ? src_[q - 1] : 0;
    size_t body = AfterEnd(q + 2, end_mod, true);
    size_t search = body;
    while (true) {
      size_t f = src_.find("{%", search);
      if (f == std::string::npos) Fail("Missing end of raw directive", start);
      size_t r = f + 2;
      char mod = (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) ? src_[r] : 0;
      if (mod) ++r;
      while (r < src_.size() && IsAsciiSpace(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") != 0) {
        search = f + 2;
        continue;
      }
      r += 6;
      while (r < src_.size() && IsAsciiSpace(src_[r])) ++r;
      char emod = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) emod = src_[r++];
      if (src_.compare(r, 2, "%}") != 0) {
        search = f + 2;
        continue;
      }
      std::string text = src_.substr(body, f - body);
      ApplyLeadingWhitespace(text, body, '%', mod);
      if (!text.empty()) Emit(Tok::kText, std::move(text), body);
      return AfterEnd(r + 2, emod, true);
    }
  }

  size_t LexTag(size_t start, size_t p, char kind) {
    const bool block = kind == '%';
    Emit(block ? Tok::kBlockBegin : Tok::kVarBegin, "", start);
    std::vector<char> stack;
    const size_t n = src_.size();
    while (true) {
      while (p < n && IsAsciiSpace(src_[p])) ++p;
      if (p >= n) Fail(block ? "Missing end of block tag '%}'" : "Missing end of variable tag '}}'", start);
      if (stack.empty()) {
        const char* close = block ? "%}" : "}}";
        if (src_.compare(p, 3, std::string("-") + close) == 0) {
          Emit(block ? Tok::kBlockEnd : Tok::kVarEnd, "", p);
          return AfterEnd(p + 3, '-', block);
        }
        if (block && src_.compare(p, 3, "+%}") == 0) {
          Emit(Tok::kBlockEnd, "", p);
          return AfterEnd(p + 3, '+', block);
        }
        if (src_.compare(p, 2, close) == 0) {
          Emit(block ? Tok::kBlockEnd : Tok::kVarEnd, "", p);
          return AfterEnd(p + 2, 0, block);
        }
      }
      char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t q = p;
        while (q < n && (std::isalnum(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) ++q;
        Emit(Tok::kName, src_.substr(p, q - p), p);
        p = q;
      } else if (c == '\'' || c == '"') {
        p = LexString(p);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        p = LexNumber(p);
      } else {
        p = LexOperator(p, stack);
      }
    }
  }

  size_t LexString(size_t p) {
    const char q = src_[p];
    std::string out;
    size_t i = p + 1;
    while (true) {
      if (i >= src_.size()) Fail("unexpected end of string", p);
      char c = src_[i];
      if (c == q) break;
      if (c != '\\') {
        out.push_back(c);
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) Fail("unexpected end of string", p);
      char e = src_[i + 1];
      i += 2;
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case '\n': break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i + digits > src_.size()) Fail("truncated \\" + std::string(1, e) + " escape", i - 2);
          char32_t cp = 0;
          for (size_t k = 0; k < digits; ++k) {
            char h = src_[i + k];
            int v = std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                    : (h >= 'a' && h <= 'f')                    ? h - 'a' + 10
                    : (h >= 'A' && h <= 'F')                    ? h - 'A' + 10
                                                                : -1;
            if (v < 0) Fail("truncated \\" + std::string(1, e) + " escape", i - 2);
            cp = cp * 16 + static_cast<char32_t>(v);
          }
          if (cp > 0x10ffff) Fail("illegal Unicode character", i - 2);
          i += digits;
          pystr::AppendUtf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {  // octal escape, up to three digits
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k, ++i)
              cp = cp * 8 + static_cast<char32_t>(src_[i] - '0');
            pystr::AppendUtf8(out, cp);
          } else {  // unknown escapes stay as written
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    Emit(Tok::kString, std::move(out), p);
    return i + 1;
  }

  size_t ScanDigits(size_t i) const {
    // (\d+_)*\d+
    while (i < src_.size() && std::isdigit(static_cast<unsigned char>(src_[i]))) {
      ++i;
      if (i + 1 < src_.size() && src_[i] == '_' && std::isdigit(static_cast<unsigned char>(src_[i + 1]))) ++i;
    }
    return i;
  }

  size_t LexNumber(size_t p) {
    size_t i = ScanDigits(p);
    bool is_float = false;
    bool after_dot = p > 0 && src_[p - 1] == '.';  // `a.0.1` is attribute access, not a float
    if (!after_dot) {
      if (i + 1 < src_.size() && src_[i] == '.' && std::isdigit(static_cast<unsigned char>(src_[i + 1]))) {
        i = ScanDigits(i + 1);
        is_float = true;
      }
      if (i < src_.size() && (src_[i] == 'e' || src_[i] == 'E')) {
        size_t j = i + 1;
        if (j < src_.size() && (src_[j] == '+' || src_[j] == '-')) ++j;
        if (j < src_.size() && std::isdigit(static_cast<unsigned char>(src_[j]))) {
          i = ScanDigits(j);
          is_float = true;
        }
      }
    }
    std::string text;
    for (size_t k = p; k < i; ++k)
      if (src_[k] != '_') text.push_back(src_[k]);
    Emit(is_float ? Tok::kFloat : Tok::kInt, std::move(text), p);
    return i;
  }

  size_t LexOperator(size_t p, std::vector<char>& stack) {
    static const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwo) {
      if (src_.compare(p, 2, op) == 0) {
        Emit(Tok::kOp, op, p);
        return p + 2;
      }
    }
    char c = src_[p];
    static const std::string kOne = "+-*/%~<>=()[]{},.:|;";
    if (kOne.find(c) == std::string::npos) Fail(std::string("unexpected char '") + c + "'", p);
    if (c == '(' || c == '[' || c == '{') {
      stack.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      if (stack.size() > 1000) Fail("too deeply nested brackets", p);
    } else if (c == ')' || c == ']' || c == '}') {
      if (stack.empty()) Fail(std::string("unexpected '") + c + "'", p);
      if (stack.back() != c) Fail(std::string("unexpected '") + c + "', expected '" + stack.back() + "'", p);
      stack.pop_back();
    }
    Emit(Tok::kOp, std::string(1, c), p);
    return p + 1;
  }

  std::string src_;
  LexOptions opt_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> Lex(const std::string& source, const LexOptions& options) {
  return Lexer(source, options).Run();
}

}  // namespace pensieve::jinja

#include "chat/jinja/pystr.h"

#include <algorithm>

#include <utf8proc.h>

#include "chat/jinja/error.h"

namespace pensieve::jinja::pystr {

std::u32string Decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) ok = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
               (cp >= 0xd800 && cp <= 0xdfff)))
      ok = false;
    if (!ok) {
      out.push_back(0xdc80 + c);
      ++i;
    } else {
      out.push_back(cp);
      i += len;
    }
  }
  return out;
}

void AppendUtf8(std::string& out, char32_t c) {
  if (c >= 0xdc80 && c <= 0xdcff) {  // a raw byte that was not valid UTF-8
    out.push_back(static_cast<char>(c - 0xdc00));
  } else if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  }
}

std::string Encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) AppendUtf8(out, c);
  return out;
}

bool IsAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

size_t Length(std::string_view s) {
  if (IsAscii(s)) return s.size();
  return Decode(s).size();
}

bool IsSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

std::string Strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  std::u32string u = Decode(s);
  std::u32string set;
  if (chars) set = Decode(*chars);
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : IsSpace(c); };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip_it(u[b])) ++b;
  if (right)
    while (e > b && strip_it(u[e - 1])) --e;
  return Encode(std::u32string_view(u).substr(b, e - b));
}

std::vector<std::string> Split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  if (!sep) {
    std::u32string u = Decode(s);
    size_t i = 0, n = u.size();
    while (true) {
      while (i < n && IsSpace(u[i])) ++i;
      if (i >= n) break;
      if (static_cast<int64_t>(out.size()) == maxsplit) {  // Python keeps the remainder's trailing space
        out.push_back(Encode(std::u32string_view(u).substr(i)));
        break;
      }
      size_t j = i;
      while (j < n && !IsSpace(u[j])) ++j;
      out.push_back(Encode(std::u32string_view(u).substr(i, j - i)));
      i = j;
    }
    return out;
  }
  if (sep->empty()) throw JinjaError("ValueError", "empty separator");
  size_t pos = 0;
  while (static_cast<int64_t>(out.size()) < maxsplit) {
    size_t f = s.find(*sep, pos);
    if (f == std::string_view::npos) break;
    out.emplace_back(s.substr(pos, f - pos));
    pos = f + sep->size();
  }
  out.emplace_back(s.substr(pos));
  return out;
}

std::vector<std::string> RSplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (maxsplit < 0) return Split(s, sep, maxsplit);
  std::vector<std::string> out;
  if (!sep) {
    std::u32string u = Decode(s);
    size_t e = u.size();
    while (true) {
      while (e > 0 && IsSpace(u[e - 1])) --e;
      if (e == 0) break;
      if (static_cast<int64_t>(out.size()) == maxsplit) {
        out.push_back(Encode(std::u32string_view(u).substr(0, e)));
        break;
      }
      size_t j = e;
      while (j > 0 && !IsSpace(u[j - 1])) --j;
      out.push_back(Encode(std::u32string_view(u).substr(j, e - j)));
      e = j;
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
  if (sep->empty()) throw JinjaError("ValueError", "empty separator");
  size_t end = s.size();
  while (static_cast<int64_t>(out.size()) < maxsplit && end >= sep->size()) {
    size_t f = s.rfind(*sep, end - sep->size());
    if (f == std::string_view::npos) break;
    out.emplace_back(s.substr(f + sep->size(), end - f - sep->size()));
    end = f;
  }
  out.emplace_back(s.substr(0, end));
  std::reverse(out.begin(), out.end());
  return out;
}

std::string Replace(std::string_view s, std::string_view old_s, std::string_view new_s, int64_t count) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (old_s.empty()) {  // Python inserts `new` before every code point and at the end
    std::u32string u = Decode(s);
    int64_t done = 0;
    for (char32_t c : u) {
      if (done < count) {
        out += new_s;
        ++done;
      }
      AppendUtf8(out, c);
    }
    if (done < count) out += new_s;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (done < count) {
    size_t f = s.find(old_s, pos);
    if (f == std::string_view::npos) break;
    out.append(s.substr(pos, f - pos));
    out.append(new_s);
    pos = f + old_s.size();
    ++done;
  }
  out.append(s.substr(pos));
  return out;
}

int64_t Find(std::string_view s, std::string_view sub, bool reverse) {
  size_t f = reverse ? s.rfind(sub) : s.find(sub);
  if (f == std::string_view::npos) return -1;
  return static_cast<int64_t>(Length(s.substr(0, f)));
}

int64_t Count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(Length(s)) + 1;
  int64_t n = 0;
  size_t pos = 0;
  while ((pos = s.find(sub, pos)) != std::string_view::npos) {
    ++n;
    pos += sub.size();
  }
  return n;
}

namespace {

// Simple (one-to-one) Unicode case mappings from utf8proc; Python's full mappings differ only for a few
// characters that expand (e.g. 'ß'.upper() == 'SS' in Python, 'ß' here).
char32_t ToUpper(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if (c == 0xdf) return c;  // ß: Python expands it to "SS" (see Upper); utf8proc would give ẞ
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t ToLower(char32_t c) { return c < 0x80 ? ((c >= 'A' && c <= 'Z') ? c + 32 : c) : static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }
char32_t ToTitle(char32_t c) { return c < 0x80 ? ToUpper(c) : static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c))); }
bool IsCased(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return false;
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
bool IsLowerCp(char32_t c) { return IsCased(c) && ToUpper(c) != c; }
bool IsUpperCp(char32_t c) { return IsCased(c) && ToLower(c) != c; }

template <typename F>
std::string MapChars(std::string_view s, F f) {
  if (IsAscii(s)) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(f(static_cast<char32_t>(c)));
    return out;
  }
  std::u32string u = Decode(s);
  for (char32_t& c : u)
    if (c < 0xdc80 || c > 0xdcff) c = f(c);
  return Encode(u);
}

}  // namespace

std::string Upper(std::string_view s) {
  std::string out = MapChars(s, ToUpper);
  return out.find("\xc3\x9f") == std::string::npos ? out : Replace(out, "\xc3\x9f", "SS", -1);
}
std::string Lower(std::string_view s) { return MapChars(s, ToLower); }
std::string SwapCase(std::string_view s) {
  return MapChars(s, [](char32_t c) { return IsUpperCp(c) ? ToLower(c) : IsLowerCp(c) ? ToUpper(c) : c; });
}

std::string Capitalize(std::string_view s) {
  std::u32string u = Decode(s);
  for (size_t i = 0; i < u.size(); ++i) u[i] = i == 0 ? ToTitle(u[i]) : ToLower(u[i]);
  return Encode(u);
}

std::string Title(std::string_view s) {
  std::u32string u = Decode(s);
  bool prev_cased = false;
  for (char32_t& c : u) {
    bool cased = IsCased(c);
    if (cased) c = prev_cased ? ToLower(c) : ToTitle(c);
    prev_cased = cased;
  }
  return Encode(u);
}

bool IsUpperStr(std::string_view s) {
  bool cased = false;
  for (char32_t c : Decode(s)) {
    if (IsLowerCp(c)) return false;
    if (IsUpperCp(c)) cased = true;
  }
  return cased;
}

bool IsLowerStr(std::string_view s) {
  bool cased = false;
  for (char32_t c : Decode(s)) {
    if (IsUpperCp(c)) return false;
    if (IsLowerCp(c)) cased = true;
  }
  return cased;
}

}  // namespace pensieve::jinja::pystr

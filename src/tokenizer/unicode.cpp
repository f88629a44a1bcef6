#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "util/error.h"

namespace pensieve::tok {
namespace {

// Length of the sequence a lead byte starts and the allowed range of its second byte (Unicode Table 3-7).
struct Lead {
  int len;
  uint8_t lo, hi;
};

Lead LeadInfo(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};  // never valid as a lead byte
}

// Number of bytes of a valid sequence starting at s[i] (0 if invalid) and, through *consumed, the length of the
// maximal subpart that is a valid prefix (at least 1).
int ValidSeqLen(std::string_view s, size_t i, size_t* consumed) {
  uint8_t b = static_cast<uint8_t>(s[i]);
  Lead l = LeadInfo(b);
  *consumed = 1;
  if (l.len == 1) return 1;
  if (l.len == 0) return 0;
  for (int k = 1; k < l.len; ++k) {
    if (i + k >= s.size()) return 0;
    uint8_t c = static_cast<uint8_t>(s[i + k]);
    uint8_t lo = k == 1 ? l.lo : 0x80, hi = k == 1 ? l.hi : 0xBF;
    if (c < lo || c > hi) return 0;
    *consumed = k + 1;
  }
  return l.len;
}

}  // namespace

uint32_t NextCodePoint(std::string_view s, size_t& i) {
  size_t consumed;
  int n = ValidSeqLen(s, i, &consumed);
  if (n == 0) {
    i += 1;
    return 0xFFFD;
  }
  uint8_t b = static_cast<uint8_t>(s[i]);
  uint32_t cp;
  if (n == 1) cp = b;
  else if (n == 2) cp = b & 0x1F;
  else if (n == 3) cp = b & 0x0F;
  else cp = b & 0x07;
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t consumed;
    int n = ValidSeqLen(s, i, &consumed);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string Utf8Lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t consumed;
    int n = ValidSeqLen(s, i, &consumed);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += consumed;
    }
  }
  return out;
}

size_t CompleteUtf8Prefix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence is a valid but unfinished prefix.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    size_t i = n - back;
    uint8_t b = static_cast<uint8_t>(s[i]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
    Lead l = LeadInfo(b);
    if (l.len <= 1 || static_cast<size_t>(l.len) <= back) return n;
    // Check the bytes present form a valid prefix.
    for (size_t k = 1; k < back; ++k) {
      uint8_t c = static_cast<uint8_t>(s[i + k]);
      uint8_t lo = k == 1 ? l.lo : 0x80, hi = k == 1 ? l.hi : 0xBF;
      if (c < lo || c > hi) return n;
    }
    return i;
  }
  return n;
}

bool IsWhitespace(uint32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool IsAlphanumeric(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
         (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

namespace {
struct ByteLevelTables {
  std::array<std::string, 256> chars;
  uint8_t packed[256][3];  // [0] = length (1 or 2), then the UTF-8 bytes
  std::array<int16_t, 324> inverse;  // code points used all lie below 0x144
  ByteLevelTables() {
    inverse.fill(-1);
    // Printable bytes keep their code point; the other 68 are moved to 256, 257, ... in byte order.
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      uint32_t cp = printable(b) ? b : next++;
      AppendUtf8(chars[b], cp);
      inverse[cp] = static_cast<int16_t>(b);
      packed[b][0] = static_cast<uint8_t>(chars[b].size());
      for (size_t k = 0; k < chars[b].size(); ++k) packed[b][1 + k] = static_cast<uint8_t>(chars[b][k]);
    }
  }
};
const ByteLevelTables& Tables() {
  static const ByteLevelTables t;
  return t;
}
}  // namespace

const std::array<std::string, 256>& ByteLevelChars() { return Tables().chars; }

int ByteLevelByte(uint32_t cp) { return cp < 324 ? Tables().inverse[cp] : -1; }

void AppendByteLevel(std::string& out, std::string_view bytes) {
  const auto& t = Tables().packed;
  size_t n = out.size();
  out.resize(n + bytes.size() * 2);
  char* p = out.data() + n;
  for (char c : bytes) {
    const uint8_t* e = t[static_cast<uint8_t>(c)];
    p[0] = static_cast<char>(e[1]);
    p[1] = static_cast<char>(e[2]);
    p += e[0];
  }
  out.resize(static_cast<size_t>(p - out.data()));
}

namespace {
std::string NormalizeRun(std::string_view s, int opts) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    static_cast<utf8proc_ssize_t>(s.size()), &out,
                                    static_cast<utf8proc_option_t>(opts));
  if (n < 0) throw Error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}
}  // namespace

std::string NormalizeUnicode(std::string_view s, NormalForm form) {
  int opts = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNFC: opts |= UTF8PROC_COMPOSE; break;
    case NormalForm::kNFD: opts |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::kNFKC: opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::kNFKD: opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  // Every ASCII character is a normalization boundary in all four forms (a starter that is unchanged and never
  // composes with what precedes it), so only each run of non-ASCII bytes, together with the ASCII character
  // just before it (a possible base for combining marks), needs the library; the rest is copied.
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t run = i;
    while (run < s.size() && static_cast<uint8_t>(s[run]) < 0x80) ++run;
    if (run == s.size()) {
      out.append(s.substr(i));
      break;
    }
    size_t begin = run > i ? run - 1 : run;  // include the preceding ASCII base, if any
    out.append(s.substr(i, begin - i));
    size_t end = run;
    while (end < s.size() && static_cast<uint8_t>(s[end]) >= 0x80) ++end;
    out += NormalizeRun(s.substr(begin, end - begin), opts);
    i = end;
  }
  return out;
}

std::string Lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = NextCodePoint(s, i);
    AppendUtf8(out, static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
  }
  return out;
}

}  // namespace pensieve::tok

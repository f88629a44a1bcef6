#pragma once
// UTF-8 lead bytes (RFC 3629, table 3-7): how many continuation bytes follow and the allowed range of the first
// one (narrower than 0x80..0xBF after E0, ED, F0 and F4, which excludes overlong forms, surrogates and code
// points above U+10FFFF).
#include <cstdint>

namespace pensieve::utf8 {

struct Lead {
  int continuation = 0;   // bytes that follow: 1..3
  uint8_t first_lo = 0x80;
  uint8_t first_hi = 0xBF;
};

// For a byte >= 0x80: false when it cannot start a well-formed sequence (a continuation byte, C0, C1, F5..FF).
inline bool ParseLead(uint8_t c, Lead* lead) {
  *lead = Lead{};
  if (c >= 0xC2 && c <= 0xDF) {
    lead->continuation = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    lead->continuation = 2;
    if (c == 0xE0) lead->first_lo = 0xA0;
    if (c == 0xED) lead->first_hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    lead->continuation = 3;
    if (c == 0xF0) lead->first_lo = 0x90;
    if (c == 0xF4) lead->first_hi = 0x8F;
  } else {
    return false;
  }
  return true;
}

}  // namespace pensieve::utf8

#pragma once
// UTF-8 and Unicode helpers shared by the tokenizer pipeline stages.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pensieve::tok {

// Decodes the code point at s[i] and advances i. Invalid or truncated sequences yield U+FFFD and advance by one.
uint32_t NextCodePoint(std::string_view s, size_t& i);
void AppendUtf8(std::string& out, uint32_t cp);
// True when s is well-formed UTF-8 (no surrogates, no overlongs).
bool IsValidUtf8(std::string_view s);
// Like Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD.
std::string Utf8Lossy(std::string_view bytes);
// Length of the longest prefix of s that ends on a complete UTF-8 sequence boundary, not counting a trailing
// sequence that is incomplete but could still be completed by more bytes.
size_t CompleteUtf8Prefix(std::string_view s);

// Rust char::is_whitespace (Unicode White_Space property).
bool IsWhitespace(uint32_t cp);
// Unicode letters/numbers (for single_word added tokens).
bool IsAlphanumeric(uint32_t cp);

// GPT-2 byte-level alphabet: every byte maps to one printable code point.
const std::array<std::string, 256>& ByteLevelChars();
// Inverse map: code point -> byte, or -1 when cp is not in the alphabet.
int ByteLevelByte(uint32_t cp);
void AppendByteLevel(std::string& out, std::string_view bytes);

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
std::string NormalizeUnicode(std::string_view s, NormalForm form);
std::string Lowercase(std::string_view s);

}  // namespace pensieve::tok

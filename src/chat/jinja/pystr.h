#pragma once
// Python str semantics on UTF-8 strings: indices count code points, whitespace is Python's Unicode
// whitespace, case mapping is Unicode's simple mapping (utf8proc).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pensieve::jinja::pystr {

// Invalid UTF-8 bytes decode to U+DC80+byte and encode back to the same byte (lossless round trip).
std::u32string Decode(std::string_view s);
std::string Encode(std::u32string_view s);
void AppendUtf8(std::string& out, char32_t c);
size_t Length(std::string_view s);  // in code points
bool IsAscii(std::string_view s);

bool IsSpace(char32_t c);
// strip/lstrip/rstrip; chars == nullopt strips whitespace.
std::string Strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / str.rsplit; sep == nullopt splits on whitespace runs.
std::vector<std::string> Split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> RSplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::string Replace(std::string_view s, std::string_view old_s, std::string_view new_s, int64_t count);
int64_t Find(std::string_view s, std::string_view sub, bool reverse);  // code-point index or -1
int64_t Count(std::string_view s, std::string_view sub);

std::string Upper(std::string_view s);
std::string Lower(std::string_view s);
std::string Capitalize(std::string_view s);  // str.capitalize()
std::string Title(std::string_view s);       // str.title()
std::string SwapCase(std::string_view s);
bool IsUpperStr(std::string_view s);  // str.isupper()
bool IsLowerStr(std::string_view s);  // str.islower()

}  // namespace pensieve::jinja::pystr

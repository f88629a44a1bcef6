#pragma once
// Jinja lexer: template source -> tokens, applying Jinja2's whitespace rules at lex time (newline
// normalization and dropping one trailing newline, `-`/`+` markers, trim_blocks, lstrip_blocks), dropping
// comments and turning {% raw %} bodies into text.
#include <cstdint>
#include <string>
#include <vector>

namespace pensieve::jinja {

enum class Tok : uint8_t {
  kText,
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text holds the unescaped value
  kInt,
  kFloat,
  kOp,  // text holds the operator: + - * / // % ** ~ == != < <= > >= = ( ) [ ] { } , . : |
  kEof,
};

struct Token {
  Tok type;
  std::string text;
  int line;
  int column;
};

struct LexOptions {
  bool trim_blocks = false;
  bool lstrip_blocks = false;
};

// Throws JinjaError("TemplateSyntaxError", ...) naming line and column on malformed input.
std::vector<Token> Lex(const std::string& source, const LexOptions& options);

}  // namespace pensieve::jinja

#pragma once
// Jinja parser: tokens -> statement tree, following Jinja2's grammar and operator precedence
// (or < and < not < comparisons < + - < ~ < * / // % < ** < unary - + < filters/tests < postfix).
// Throws JinjaError("TemplateSyntaxError") naming line and column; nesting is bounded.
#include <vector>

#include "chat/jinja/ast.h"
#include "chat/jinja/lexer.h"

namespace pensieve::jinja {

Body Parse(const std::vector<Token>& tokens);

}  // namespace pensieve::jinja

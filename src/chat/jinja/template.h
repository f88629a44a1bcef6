#pragma once
// A parsed Jinja template: the interpreter's entry point. Parse once, render many times (Render is const
// and thread-safe: each call has its own frames).
#include <ctime>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/jinja/ast.h"
#include "chat/jinja/interpreter.h"
#include "chat/jinja/lexer.h"

namespace pensieve::jinja {

class Template {
 public:
  // Throws JinjaError (TemplateSyntaxError / TemplateAssertionError) naming line and column.
  Template(const std::string& source, const LexOptions& options);

  // `context` must be a JSON object; its keys become template variables beside the standard globals.
  // `now` feeds strftime_now (local time when empty).
  std::string Render(const nlohmann::ordered_json& context, std::function<std::tm()> now = {},
                     const RenderLimits& limits = {}) const;

 private:
  Body body_;
};

}  // namespace pensieve::jinja

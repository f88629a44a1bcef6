#pragma once
// Errors raised while lexing, parsing or rendering a template. `kind` is the Python exception class a
// Jinja2 render would raise (TemplateSyntaxError, UndefinedError, TypeError, ...; "raise_exception" for the
// template's own raise_exception), `detail` its message, so callers can compare with Jinja2's output.
#include <string>

#include "util/error.h"

namespace pensieve::jinja {

class JinjaError : public pensieve::Error {
 public:
  JinjaError(std::string kind, std::string detail, int line = 0, int column = 0);
  const std::string& kind() const { return kind_; }
  const std::string& detail() const { return detail_; }
  int line() const { return line_; }
  int column() const { return column_; }
  bool HasLocation() const { return line_ > 0; }

 private:
  std::string kind_;
  std::string detail_;
  int line_;
  int column_;
};

[[noreturn]] void ThrowTypeError(const std::string& detail);

}  // namespace pensieve::jinja

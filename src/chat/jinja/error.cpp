#include "chat/jinja/error.h"

namespace pensieve::jinja {
namespace {

std::string Compose(const std::string& kind, const std::string& detail, int line, int column) {
  if (kind == "raise_exception") return detail;  // the template's own words, as the user should see them
  std::string s = kind + ": " + detail;
  if (line > 0) {
    s += " (template line " + std::to_string(line);
    if (column > 0) s += ", column " + std::to_string(column);
    s += ")";
  }
  return s;
}

}  // namespace

JinjaError::JinjaError(std::string kind, std::string detail, int line, int column)
    : pensieve::Error(Compose(kind, detail, line, column)),
      kind_(std::move(kind)),
      detail_(std::move(detail)),
      line_(line),
      column_(column) {}

void ThrowTypeError(const std::string& detail) { throw JinjaError("TypeError", detail); }

}  // namespace pensieve::jinja

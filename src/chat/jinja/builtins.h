#pragma once
// Jinja2's built-in filters and tests (plus transformers' `tojson`), with Python Jinja2 3.1 behaviour.
#include <string>

#include "chat/jinja/value.h"

namespace pensieve::jinja {

bool HasFilter(const std::string& name);
bool HasTest(const std::string& name);
// `value | name(args)`. Throws JinjaError on bad arguments, as Jinja2 would.
Value ApplyFilter(const std::string& name, const Value& value, Args& args);
// `value is name(args)`.
bool ApplyTest(const std::string& name, const Value& value, Args& args);

}  // namespace pensieve::jinja

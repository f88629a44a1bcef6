#pragma once
// Checks that a tool's input schema is a JSON Schema (draft 2020-12, with the draft-07 spellings clients still
// send) before it is rendered into a prompt: every keyword the specification gives a shape (`properties` an
// object of schemas, `required` a list of names, `minLength` a count, ...) must have that shape, and a tool's
// top-level schema must describe an object. Unknown keywords are allowed, as the specification says; values
// (patterns, formats) are not interpreted.
#include <optional>
#include <string>

#include "api/chat_request.h"

namespace pensieve::api {

// Empty when `schema` is well formed; otherwise where and what, e.g. "properties.city.type: must be one of
// null, boolean, object, array, number, string, integer (got \"text\")".
std::optional<std::string> ToolSchemaProblem(const Json& schema);

}  // namespace pensieve::api

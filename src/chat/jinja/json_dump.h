#pragma once
// Python json.dumps over Jinja values: what transformers' `tojson` filter produces
// (json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)).
#include <optional>
#include <string>

#include "chat/jinja/value.h"

namespace pensieve::jinja {

struct DumpOptions {
  std::optional<std::string> indent;  // nullopt: one line; "" or spaces: pretty-printed
  std::string item_separator = ", ";  // Python's default; ',' once indent is set
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};

// Throws TypeError "Object of type X is not JSON serializable" for Undefined, generators, namespaces...
std::string JsonDumps(const Value& v, const DumpOptions& options);

}  // namespace pensieve::jinja

#include "api/json_body.h"

#include <string>

namespace pensieve::api {
namespace {

// Linear scan: nesting depth of [ and { outside string literals. Returns the offset where max_depth is first
// exceeded, or npos.
size_t FindExcessNesting(std::string_view s, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    }
  }
  return std::string_view::npos;
}

}  // namespace

Json ParseJsonBody(std::string_view body, int max_depth) {
  if (body.empty()) throw InvalidRequest("request body is empty; expected a JSON object");
  size_t deep = FindExcessNesting(body, max_depth);
  if (deep != std::string_view::npos) {
    throw InvalidRequest("request body nests JSON deeper than " + std::to_string(max_depth) +
                         " levels (at byte offset " + std::to_string(deep) + ")");
  }
  try {
    Json j = Json::parse(body.begin(), body.end());
    if (!j.is_object()) throw InvalidRequest("request body must be a JSON object");
    return j;
  } catch (const Json::parse_error& e) {
    // nlohmann's message names the byte position and what it expected (also for ill-formed UTF-8).
    throw InvalidRequest(std::string("request body is not valid JSON: ") + e.what());
  }
}

}  // namespace pensieve::api

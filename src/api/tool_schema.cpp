#include "api/tool_schema.h"

#include <set>

namespace pensieve::api {
namespace {

const char* KindOf(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

class Checker {
 public:
  std::optional<std::string> problem;

  // `at` is the path of `s` from the top (empty at the top).
  void Schema(const Json& s, const std::string& at, int depth) {
    if (problem) return;
    if (depth > kMaxDepth) return Fail(at, "schemas nested too deeply");
    if (s.is_boolean()) return;
    if (!s.is_object()) return Fail(at, std::string("a schema must be an object or a boolean (got ") + KindOf(s) + ")");
    for (auto it = s.begin(); it != s.end() && !problem; ++it) Keyword(it.key(), it.value(), Join(at, it.key()), depth);
  }

 private:
  static constexpr int kMaxDepth = 64;

  static std::string Join(const std::string& at, const std::string& key) { return at.empty() ? key : at + "." + key; }
  void Fail(const std::string& at, const std::string& what) {
    if (!problem) problem = (at.empty() ? "" : at + ": ") + what;
  }

  void Keyword(const std::string& k, const Json& v, const std::string& at, int depth) {
    static const std::set<std::string> kSchemaMaps = {"properties", "patternProperties", "$defs", "definitions",
                                                      "dependentSchemas"};
    static const std::set<std::string> kOneSchema = {"additionalProperties", "unevaluatedProperties",
                                                     "unevaluatedItems", "contains", "not", "if", "then", "else",
                                                     "propertyNames", "additionalItems"};
    static const std::set<std::string> kSchemaLists = {"allOf", "anyOf", "oneOf", "prefixItems"};
    static const std::set<std::string> kCounts = {"minLength", "maxLength", "minItems", "maxItems", "minProperties",
                                                  "maxProperties", "minContains", "maxContains"};
    static const std::set<std::string> kNumbers = {"minimum", "maximum", "multipleOf"};
    static const std::set<std::string> kStrings = {"title", "description", "format", "pattern", "$ref", "$id",
                                                   "$schema", "$anchor", "$comment", "$dynamicRef", "$dynamicAnchor",
                                                   "contentMediaType", "contentEncoding"};
    static const std::set<std::string> kFlags = {"uniqueItems", "readOnly", "writeOnly", "deprecated"};
    if (k == "type") return Type(v, at);
    if (kSchemaMaps.count(k)) {
      if (!v.is_object()) return Fail(at, std::string("must be an object of schemas (got ") + KindOf(v) + ")");
      for (auto it = v.begin(); it != v.end() && !problem; ++it) Schema(it.value(), Join(at, it.key()), depth + 1);
      return;
    }
    if (kOneSchema.count(k)) return Schema(v, at, depth + 1);
    if (k == "items") {  // a schema; draft-07's list of schemas is still accepted
      if (v.is_array()) return List(v, at, depth, false);
      return Schema(v, at, depth + 1);
    }
    if (kSchemaLists.count(k)) return List(v, at, depth, true);
    if (k == "required") return Names(v, at);
    if (k == "dependentRequired") {
      if (!v.is_object()) return Fail(at, std::string("must be an object of name lists (got ") + KindOf(v) + ")");
      for (auto it = v.begin(); it != v.end() && !problem; ++it) Names(it.value(), Join(at, it.key()));
      return;
    }
    if (k == "enum") {
      if (!v.is_array()) return Fail(at, std::string("must be an array (got ") + KindOf(v) + ")");
      return;
    }
    if (k == "examples" && !v.is_array()) return Fail(at, std::string("must be an array (got ") + KindOf(v) + ")");
    if (kCounts.count(k)) {
      if (!(v.is_number_integer() && v.get<int64_t>() >= 0) &&
          !(v.is_number_float() && v.get<double>() >= 0 && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>()))))
        Fail(at, std::string("must be a non-negative integer (got ") + (v.is_number() ? v.dump() : KindOf(v)) + ")");
      return;
    }
    if (kNumbers.count(k)) {
      if (!v.is_number()) return Fail(at, std::string("must be a number (got ") + KindOf(v) + ")");
      if (k == "multipleOf" && !(v.get<double>() > 0)) Fail(at, "must be greater than 0 (got " + v.dump() + ")");
      return;
    }
    if (k == "exclusiveMinimum" || k == "exclusiveMaximum") {  // a number (draft 4's boolean still accepted)
      if (!v.is_number() && !v.is_boolean()) Fail(at, std::string("must be a number (got ") + KindOf(v) + ")");
      return;
    }
    if (kStrings.count(k)) {
      if (!v.is_string()) Fail(at, std::string("must be a string (got ") + KindOf(v) + ")");
      return;
    }
    if (kFlags.count(k) && !v.is_boolean()) Fail(at, std::string("must be a boolean (got ") + KindOf(v) + ")");
  }

  void Type(const Json& v, const std::string& at) {
    static const std::set<std::string> kTypes = {"null", "boolean", "object", "array", "number", "string", "integer"};
    const std::string expected = "must be one of null, boolean, object, array, number, string, integer";
    if (v.is_string()) {
      if (!kTypes.count(v.get<std::string>())) Fail(at, expected + " (got " + v.dump() + ")");
      return;
    }
    if (!v.is_array() || v.empty()) return Fail(at, expected + ", or a non-empty list of them (got " + KindOf(v) + ")");
    std::set<std::string> seen;
    for (const Json& e : v) {
      if (!e.is_string() || !kTypes.count(e.get<std::string>())) return Fail(at, expected + " (got " + e.dump() + ")");
      if (!seen.insert(e.get<std::string>()).second) return Fail(at, "lists " + e.dump() + " twice");
    }
  }

  void List(const Json& v, const std::string& at, int depth, bool non_empty) {
    if (!v.is_array() || (non_empty && v.empty()))
      return Fail(at, std::string("must be a non-empty array of schemas (got ") + (v.is_array() ? "an empty array" : KindOf(v)) + ")");
    for (size_t i = 0; i < v.size() && !problem; ++i) Schema(v[i], at + "." + std::to_string(i), depth + 1);
  }

  void Names(const Json& v, const std::string& at) {
    if (!v.is_array()) return Fail(at, std::string("must be an array of property names (got ") + KindOf(v) + ")");
    std::set<std::string> seen;
    for (const Json& e : v) {
      if (!e.is_string()) return Fail(at, std::string("must be an array of property names (got ") + KindOf(e) + " in it)");
      if (!seen.insert(e.get<std::string>()).second) return Fail(at, "names " + e.dump() + " twice");
    }
  }
};

}  // namespace

std::optional<std::string> ToolSchemaProblem(const Json& schema) {
  if (!schema.is_object()) return std::string("must be a JSON Schema object (got ") + KindOf(schema) + ")";
  if (auto t = schema.find("type"); t != schema.end() && !(t->is_string() && t->get<std::string>() == "object"))
    return "type: a tool's input is a JSON object, so the schema's type must be \"object\" (got " + t->dump() + ")";
  Checker c;
  c.Schema(schema, "", 0);
  return c.problem;
}

}  // namespace pensieve::api

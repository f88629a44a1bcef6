// Tool input schemas are checked as JSON Schema before they reach a prompt (issue 14, defect 8): what real
// clients send (Claude Code's draft 2020-12 schemas, pydantic's $defs/$ref/anyOf, draft-07 spellings) passes;
// a keyword of the wrong shape is a 400 naming the tool and the keyword, on both APIs.
#include <gtest/gtest.h>

#include "api/anthropic.h"
#include "api/openai.h"
#include "api/tool_schema.h"

namespace pensieve::api {
namespace {

std::string Problem(const char* schema) {
  auto p = ToolSchemaProblem(Json::parse(schema));
  return p ? *p : "";
}

TEST(ToolSchema, SchemasRealClientsSendAreAccepted) {
  // Claude Code (claude-code-traffic.md: draft 2020-12 with $schema and additionalProperties false).
  EXPECT_EQ(Problem(R"({"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
      "properties":{"command":{"type":"string","description":"The command"},"timeout":{"type":"number","maximum":600000},
                    "run_in_background":{"type":"boolean"}},"required":["command"],"additionalProperties":false})"), "");
  // pydantic: $defs, $ref, anyOf with null, enum, default, title; arrays with item schemas and bounds.
  EXPECT_EQ(Problem(R"({"type":"object","title":"Args","$defs":{"Unit":{"enum":["c","f"],"type":"string"}},
      "properties":{"unit":{"$ref":"#/$defs/Unit","default":"c"},"city":{"anyOf":[{"type":"string"},{"type":"null"}]},
                    "tags":{"type":"array","items":{"type":"string","minLength":1},"minItems":0,"uniqueItems":true},
                    "n":{"type":["integer","null"],"minimum":0,"exclusiveMaximum":10,"multipleOf":2}},
      "required":["unit"]})"), "");
  // draft-07 spellings: items as a list, definitions, boolean exclusiveMinimum; boolean schemas; no type at all.
  EXPECT_EQ(Problem(R"({"definitions":{"x":true},"properties":{"p":{"items":[{"type":"string"},false],
      "exclusiveMinimum":true,"minimum":1}},"additionalProperties":{"not":{"type":"null"}},"x-vendor":5})"), "");
  EXPECT_EQ(Problem(R"({})"), "");
}

TEST(ToolSchema, MalformedKeywordsAreNamed) {
  EXPECT_EQ(Problem(R"({"type":"object","properties":5})"), "properties: must be an object of schemas (got a number)");
  EXPECT_EQ(Problem(R"({"properties":{"city":{"type":"text"}}})"),
            "properties.city.type: must be one of null, boolean, object, array, number, string, integer (got \"text\")");
  EXPECT_EQ(Problem(R"({"properties":{"city":7}})"), "properties.city: a schema must be an object or a boolean (got a number)");
  EXPECT_EQ(Problem(R"({"required":"city"})"), "required: must be an array of property names (got a string)");
  EXPECT_EQ(Problem(R"({"required":["a","a"]})"), "required: names \"a\" twice");
  EXPECT_EQ(Problem(R"({"properties":{"s":{"type":"string","minLength":-1}}})"),
            "properties.s.minLength: must be a non-negative integer (got -1)");
  EXPECT_EQ(Problem(R"({"properties":{"s":{"anyOf":[]}}})"), "properties.s.anyOf: must be a non-empty array of schemas (got an empty array)");
  EXPECT_EQ(Problem(R"({"properties":{"a":{"type":"array","items":3}}})"), "properties.a.items: a schema must be an object or a boolean (got a number)");
  EXPECT_EQ(Problem(R"({"properties":{"n":{"multipleOf":0}}})"), "properties.n.multipleOf: must be greater than 0 (got 0)");
  EXPECT_EQ(Problem(R"({"description":["x"]})"), "description: must be a string (got an array)");
  EXPECT_EQ(Problem(R"({"type":"string"})"), "type: a tool's input is a JSON object, so the schema's type must be \"object\" (got \"string\")");
  EXPECT_EQ(Problem(R"([1])"), "must be a JSON Schema object (got an array)");
  std::string deep = R"({"properties":{"a":)";
  for (int i = 0; i < 70; ++i) deep += R"({"not":)";
  deep += "true";
  for (int i = 0; i < 70; ++i) deep += "}";
  deep += "}}";
  EXPECT_NE(Problem(deep.c_str()).find("nested too deeply"), std::string::npos);
}

TEST(ToolSchema, BothApisAnswer400NamingToolAndKeyword) {
  Json a = Json::parse(R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],
      "tools":[{"name":"ok","input_schema":{"type":"object"}},{"name":"get_weather","input_schema":{"type":"object","properties":5}}]})");
  try {
    ParseAnthropicRequest(a, {});
    ADD_FAILURE() << "accepted";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.type(), "invalid_request_error");
    EXPECT_EQ(std::string(e.what()),
              "tools.1.input_schema: JSON schema of tool 'get_weather' is invalid: properties: must be an object of schemas (got a number)");
  }
  Json o = Json::parse(R"({"model":"m","messages":[{"role":"user","content":"hi"}],
      "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"c":{"type":"txt"}}}}}]})");
  OpenAIOptions options;
  try {
    ParseOpenAIChatRequest(o, 64, &options);
    ADD_FAILURE() << "accepted";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("tools[0].function.parameters: JSON schema of tool 'get_weather' is invalid: "
                                          "properties.c.type"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace pensieve::api

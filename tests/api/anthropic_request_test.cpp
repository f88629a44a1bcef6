// Request parsing and validation of the Anthropic adapter (anthropic-api.md §1, §8 cases 2, 10, 12, 14, 15,
// 20, 21, 31) and of untrusted JSON bodies.
#include <gtest/gtest.h>

#include "api/anthropic.h"
#include "api/json_body.h"

namespace pensieve::api {
namespace {

using Role = ChatMessage::Role;

Json Base() {
  return Json::parse(R"({"model":"m","max_tokens":64,"messages":[{"role":"user","content":"Say hi"}]})");
}

std::string ErrorOf(const Json& body, bool count_tokens = false) {
  try {
    ParseAnthropicRequest(body, {count_tokens, false});
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.type(), "invalid_request_error");
    return e.what();
  }
  return "";
}

TEST(JsonBody, RejectsMalformedJsonWithOffset) {
  try {
    ParseJsonBody(R"({"model": "m", )");
    FAIL();
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
}

TEST(JsonBody, RejectsInvalidUtf8) {
  std::string body = "{\"model\": \"m\xff\xfe\"}";
  EXPECT_THROW(ParseJsonBody(body), RequestError);
}

TEST(JsonBody, RejectsDeepNestingWithoutRecursing) {
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  try {
    ParseJsonBody("{\"a\":" + deep + "}");
    FAIL();
  } catch (const RequestError& e) {
    EXPECT_NE(std::string(e.what()).find("deeper than 128"), std::string::npos) << e.what();
  }
  // Brackets inside strings do not count.
  EXPECT_NO_THROW(ParseJsonBody("{\"a\":\"" + std::string(1000, '[') + "\"}"));
}

TEST(JsonBody, RejectsNumberOverflow) {  // a fuzzer find: nlohmann throws out_of_range, not parse_error
  try {
    ParseJsonBody(R"({"max_tokens": 66e6666666666666666666})");
    FAIL();
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400);
  }
}

TEST(JsonBody, RejectsNonObjectsAndEmpty) {
  EXPECT_THROW(ParseJsonBody("[1,2]"), RequestError);
  EXPECT_THROW(ParseJsonBody(""), RequestError);
  EXPECT_THROW(ParseJsonBody("{} {}"), RequestError);
}

TEST(AnthropicRequest, ParsesMinimal) {
  ChatRequest r = ParseAnthropicRequest(Base(), {});
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.max_tokens, 64);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, Role::kUser);
  EXPECT_EQ(r.messages[0].content, "Say hi");
  EXPECT_EQ(r.thinking, false);
  EXPECT_FALSE(r.stream);
}

TEST(AnthropicRequest, MaxTokensRules) {  // §8.20
  Json b = Base();
  b.erase("max_tokens");
  EXPECT_NE(ErrorOf(b).find("max_tokens"), std::string::npos);
  b["max_tokens"] = -1;
  EXPECT_NE(ErrorOf(b).find("max_tokens"), std::string::npos);
  b["max_tokens"] = "10";
  EXPECT_NE(ErrorOf(b).find("max_tokens"), std::string::npos);
  b["max_tokens"] = 0;
  EXPECT_EQ(ErrorOf(b), "");
  b.erase("max_tokens");
  EXPECT_EQ(ErrorOf(b, /*count_tokens=*/true), "");
}

// The empty text block our keep-alive opened comes back in the assistant turn (Claude Code sends its history
// as streamed): it is dropped there, while a blank user block is still a 400 (above).
TEST(AnthropicRequest, BlankAssistantTextBlockFromKeepAliveIsDropped) {
  Json b = Base();
  b["messages"] = Json::parse(R"([
    {"role": "user", "content": "Create hello.txt containing hi"},
    {"role": "assistant", "content": [{"type": "text", "text": ""},
                                      {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "echo hi > hello.txt"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]}])");
  ChatRequest r = ParseAnthropicRequest(b, {});
  bool saw_call = false;
  for (const auto& m : r.messages) {
    if (m.role != ChatMessage::Role::kAssistant) continue;
    EXPECT_EQ(m.content, "");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    saw_call = m.tool_calls[0].name == "Bash";
  }
  EXPECT_TRUE(saw_call);
}

TEST(AnthropicRequest, BadInputsEach400) {  // §8.21 and wrong types
  Json b = Base();
  b.erase("messages");
  EXPECT_NE(ErrorOf(b).find("messages: Field required"), std::string::npos);
  b["messages"] = Json::array();
  EXPECT_NE(ErrorOf(b).find("messages"), std::string::npos);
  b = Base();
  b["messages"][0]["role"] = "tool";
  EXPECT_NE(ErrorOf(b).find("messages.0.role"), std::string::npos);
  b = Base();
  b["messages"][0]["content"] = Json::parse(R"([{"type":"text","text":"  \n "}])");
  EXPECT_NE(ErrorOf(b).find("messages.0.content.0: text content blocks must contain non-whitespace text"), std::string::npos);
  b = Base();
  b["temperature"] = 5;
  EXPECT_NE(ErrorOf(b).find("temperature"), std::string::npos);
  b = Base();
  b["model"] = 7;
  EXPECT_NE(ErrorOf(b).find("model"), std::string::npos);
  b = Base();
  b["messages"] = "hi";
  EXPECT_NE(ErrorOf(b).find("messages"), std::string::npos);
  b = Base();
  b["messages"][0].erase("content");
  EXPECT_NE(ErrorOf(b).find("messages.0.content: Field required"), std::string::npos);
  b = Base();
  b["stop_sequences"] = "7";
  EXPECT_NE(ErrorOf(b).find("stop_sequences"), std::string::npos);
  b = Base();
  b["tool_choice"] = Json::parse(R"({"type":"tool","name":"nope"})");
  EXPECT_NE(ErrorOf(b).find("tool_choice"), std::string::npos);
}

TEST(AnthropicRequest, StringAndBlockFormsAreEquivalent) {  // §8.2
  Json a = Base();
  a["system"] = "Be brief.";
  Json b = Base();
  b["messages"][0]["content"] = Json::parse(R"([{"type":"text","text":"Say hi","cache_control":{"type":"ephemeral"}}])");
  b["system"] = Json::parse(R"([{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}])");
  ChatRequest ra = ParseAnthropicRequest(a, {});
  ChatRequest rb = ParseAnthropicRequest(b, {});
  ASSERT_EQ(ra.messages.size(), 2u);
  ASSERT_EQ(rb.messages.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(ra.messages[i].role, rb.messages[i].role);
    EXPECT_EQ(ra.messages[i].content, rb.messages[i].content);
  }
}

TEST(AnthropicRequest, BillingHeaderBlockIsDroppedAndBlocksJoined) {
  Json b = Base();
  b["system"] = Json::parse(R"([
    {"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.197.abc; cc_entrypoint=sdk-cli;"},
    {"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}},
    {"type":"text","text":"Main prompt."}])");
  ChatRequest r = ParseAnthropicRequest(b, {});
  ASSERT_EQ(r.messages[0].role, Role::kSystem);
  EXPECT_EQ(r.messages[0].content, "You are Claude Code.\n\nMain prompt.");
}

// A client that sends the billing line in the same string or block as the system prompt (a proxy flattening
// Claude Code's blocks, a replayed capture) loses that line only, never the prompt after it.
TEST(AnthropicRequest, BillingLineInsideTheSystemTextDropsOnlyThatLine) {
  Json b = Base();
  b["system"] = "x-anthropic-billing-header: cc_version=2.1.283.db3; cc_entrypoint=sdk-cli;\n\nYou are Claude Code.\nRules.";
  ChatRequest r = ParseAnthropicRequest(b, {});
  ASSERT_EQ(r.messages[0].role, Role::kSystem);
  EXPECT_EQ(r.messages[0].content, "You are Claude Code.\nRules.");
  b["system"] = Json::parse(R"([{"type":"text","text":"x-anthropic-billing-header: cc_version=1;\r\nPrompt."},
                                {"type":"text","text":"More."}])");
  r = ParseAnthropicRequest(b, {});
  EXPECT_EQ(r.messages[0].content, "Prompt.\n\nMore.");
  b["system"] = "x-anthropic-billing-header: cc_version=1;";  // the line alone: no system message at all
  r = ParseAnthropicRequest(b, {});
  EXPECT_NE(r.messages[0].role, Role::kSystem);
}

TEST(AnthropicRequest, ClaudeCodeShapeIsAccepted) {  // §8.31 and claude-code-traffic.md §3
  Json b = Json::parse(R"({
    "model":"claude-opus-4-8","max_tokens":32000,"stream":true,
    "thinking":{"type":"adaptive"},"output_config":{"effort":"high","format":{"type":"json_schema","schema":{}}},
    "context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},
    "metadata":{"user_id":"{\"device_id\":\"x\"}"},"service_tier":"auto","cache_control":{"type":"ephemeral"},
    "speed":"fast","container":null,"some_future_field":{"x":1},
    "tools":[{"name":"Bash","description":"run","input_schema":{"$schema":"https://json-schema.org/draft/2020-12/schema",
               "type":"object","properties":{"command":{"type":"string"}},"required":["command"],"additionalProperties":false}},
             {"type":"web_search_20250305","name":"web_search","max_uses":5}],
    "messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>date</system-reminder>"},
                                          {"type":"text","text":"hello","cache_control":{"type":"ephemeral"}}]},
                {"role":"system","content":"Agent list and skills."}]})");
  std::vector<std::string> notes;
  ChatRequest r = ParseAnthropicRequest(b, {}, &notes);
  EXPECT_EQ(r.thinking, true);
  ASSERT_EQ(r.tools.size(), 1u);
  EXPECT_EQ(r.tools[0].name, "Bash");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("web_search_20250305"), std::string::npos);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].role, Role::kSystem);  // kept in place, as the last message
}

TEST(AnthropicRequest, ToolHistoryRoundTrip) {  // §8.9
  Json b = Json::parse(R"({"model":"m","max_tokens":10,"tools":[{"name":"get_weather","input_schema":{"type":"object"}}],
    "messages":[{"role":"user","content":"weather?"},
      {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"foreign-sig"},
                                     {"type":"redacted_thinking","data":"abc"},
                                     {"type":"text","text":"Checking."},
                                     {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},
                                     {"type":"tool_use","id":"toolu_2","name":"get_weather","input":{"city":"Rome"}}]},
      {"role":"user","content":[{"type":"text","text":"also this"},
                                {"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},
                                {"type":"tool_result","tool_use_id":"toolu_2","is_error":true,
                                 "content":[{"type":"text","text":"timeout"}]}]}]})");
  ChatRequest r = ParseAnthropicRequest(b, {});
  ASSERT_EQ(r.messages.size(), 5u);
  EXPECT_EQ(r.messages[1].role, Role::kAssistant);
  EXPECT_EQ(r.messages[1].reasoning, "hmm");
  EXPECT_EQ(r.messages[1].content, "Checking.");
  ASSERT_EQ(r.messages[1].tool_calls.size(), 2u);
  EXPECT_EQ(r.messages[1].tool_calls[0].arguments["city"], "Paris");
  // Tool results come first, then the user's text.
  EXPECT_EQ(r.messages[2].role, Role::kTool);
  EXPECT_EQ(r.messages[2].tool_call_id, "toolu_1");
  EXPECT_EQ(r.messages[2].content, "18C");
  EXPECT_EQ(r.messages[2].tool_name, "get_weather");
  EXPECT_EQ(r.messages[3].role, Role::kTool);
  EXPECT_TRUE(r.messages[3].is_error);
  EXPECT_EQ(r.messages[3].content, "timeout");
  EXPECT_EQ(r.messages[4].role, Role::kUser);
  EXPECT_EQ(r.messages[4].content, "also this");
}

TEST(AnthropicRequest, HistoryErrors) {  // §8.10
  Json b = Json::parse(R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":[
      {"type":"tool_result","tool_use_id":"toolu_x","content":"r"}]}]})");
  b["messages"].insert(b["messages"].begin(), Json::parse(R"({"role":"user","content":"hi"})"));
  EXPECT_EQ(ErrorOf(b).rfind("messages.1.content.0:", 0), 0u) << ErrorOf(b);
  Json c = Json::parse(R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},
      {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},
      {"role":"user","content":"no result"}]})");
  EXPECT_NE(ErrorOf(c).find("tool_use ids were found without tool_result blocks"), std::string::npos) << ErrorOf(c);
}

TEST(AnthropicRequest, ImagesAndDocuments) {  // §8.15
  Json b = Base();
  b["messages"][0]["content"] = Json::parse(R"([{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}},
                                                {"type":"text","text":"what is this"}])");
  EXPECT_NE(ErrorOf(b).find("messages.0.content.0: image content is not supported"), std::string::npos);
  b["messages"][0]["content"] = Json::parse(R"([{"type":"document","source":{"type":"text","media_type":"text/plain","data":"Doc body."},
                                                 "title":"T"},{"type":"text","text":"summarise"}])");
  ChatRequest r = ParseAnthropicRequest(b, {});
  EXPECT_EQ(r.messages[0].content, "T\n\nDoc body.summarise");
  b["messages"][0]["content"] = Json::parse(R"([{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"}}])");
  EXPECT_NE(ErrorOf(b).find("application/pdf"), std::string::npos);
}

TEST(AnthropicRequest, ThinkingSwitch) {  // §8.11
  Json b = Base();
  b["thinking"] = Json::parse(R"({"type":"enabled","budget_tokens":2048})");
  EXPECT_EQ(ParseAnthropicRequest(b, {}).thinking, true);
  b["thinking"] = Json::parse(R"({"type":"disabled"})");
  EXPECT_EQ(ParseAnthropicRequest(b, {}).thinking, false);
  b["thinking"] = Json::parse(R"({"type":"adaptive"})");
  b["output_config"] = Json::parse(R"({"effort":"low"})");
  EXPECT_EQ(ParseAnthropicRequest(b, {}).thinking, true);
  b["thinking"] = Json::parse(R"({"type":"sometimes"})");
  EXPECT_NE(ErrorOf(b).find("thinking.type"), std::string::npos);
}

TEST(AnthropicRequest, ToolChoiceModes) {  // §8.7, 8.8
  Json b = Base();
  b["tools"] = Json::parse(R"([{"name":"get_weather","input_schema":{"type":"object"}}])");
  b["tool_choice"] = Json::parse(R"({"type":"tool","name":"get_weather","disable_parallel_tool_use":true})");
  ChatRequest r = ParseAnthropicRequest(b, {});
  EXPECT_EQ(r.tool_choice.mode, ToolChoice::Mode::kNamed);
  EXPECT_TRUE(r.tool_choice.disable_parallel);
  b["tool_choice"] = Json::parse(R"({"type":"none"})");
  EXPECT_EQ(ParseAnthropicRequest(b, {}).tool_choice.mode, ToolChoice::Mode::kNone);
  b.erase("tools");
  b["tool_choice"] = Json::parse(R"({"type":"any"})");
  EXPECT_NE(ErrorOf(b).find("tool_choice"), std::string::npos);
}

}  // namespace
}  // namespace pensieve::api

// /v1/messages, count_tokens and models over real HTTP (raw sockets) against the fake engine: the §8 cases of
// anthropic-api.md that do not need a real model. Every streaming response goes through the SSE validator.
#include <gtest/gtest.h>

#include <regex>

#include "fakes/http_client.h"
#include "fakes/sse_validator.h"
#include "fakes/test_server.h"

namespace pensieve::test {
namespace {

using Json = nlohmann::json;

HttpResult Post(const TestServer& s, const std::string& path, const Json& body, std::map<std::string, std::string> headers = {}) {
  headers.emplace("anthropic-version", "2023-06-01");
  return Request(s.port, "POST", path, body.dump(), headers);
}

Json Hi(int max_tokens = 64) {
  Json j = Json::parse(R"({"model":"claude-test","messages":[{"role":"user","content":"Say hi"}]})");
  j["max_tokens"] = max_tokens;
  return j;
}

void ExpectError(const HttpResult& r, int status, const std::string& type, const std::string& fragment = "") {
  EXPECT_EQ(r.status, status) << r.raw;
  auto j = Json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j["type"], "error");
  EXPECT_EQ(j["error"]["type"], type);
  EXPECT_TRUE(std::regex_match(j["request_id"].get<std::string>(), std::regex("^req_[A-Za-z0-9]+$")));
  EXPECT_EQ(r.headers.at("request-id"), j["request_id"]);
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  if (!fragment.empty()) EXPECT_NE(j["error"]["message"].get<std::string>().find(fragment), std::string::npos) << r.body;
}

// Collects text of all text_delta events and checks the grammar.
std::string StreamText(const HttpResult& r, bool allow_error = false) {
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type").rfind("text/event-stream", 0) : 1u, 0u);
  EXPECT_EQ(ValidateAnthropicSse(r.body, allow_error), "") << r.body;
  std::string text;
  for (const auto& f : ParseSse(r.body)) {
    auto j = Json::parse(f.data);
    if (f.event == "content_block_delta" && j["delta"]["type"] == "text_delta") text += j["delta"]["text"].get<std::string>();
  }
  return text;
}

TEST(Messages, CreateNonStreaming) {  // §8.1, §8.23 (any model name is served and echoed)
  TestServer s;
  HttpResult r = Post(s, "/v1/messages", Hi());
  ASSERT_EQ(r.status, 200) << r.raw;
  auto j = Json::parse(r.body);
  EXPECT_EQ(j["type"], "message");
  EXPECT_EQ(j["role"], "assistant");
  EXPECT_EQ(j["model"], "claude-test");
  EXPECT_TRUE(std::regex_match(j["id"].get<std::string>(), std::regex("^msg_[A-Za-z0-9]+$")));
  EXPECT_EQ(j["content"][0]["type"], "text");
  EXPECT_EQ(j["content"][0]["text"], "Hi! I am a fake model.");
  EXPECT_EQ(j["stop_reason"], "end_turn");
  EXPECT_TRUE(j["stop_sequence"].is_null());
  EXPECT_GT(j["usage"]["input_tokens"].get<int>(), 0);
  EXPECT_EQ(j["usage"]["output_tokens"], 23);  // 22 byte tokens and the end-of-turn token
  EXPECT_EQ(j["usage"]["cache_read_input_tokens"], 0);
  EXPECT_TRUE(std::regex_match(r.headers["request-id"], std::regex("^req_[A-Za-z0-9]+$")));
}

TEST(Messages, StreamGrammarAndEqualsNonStream) {  // §8.3, §8.4
  TestServer s;
  Json b = Hi();
  b["stream"] = true;
  HttpResult r = Post(s, "/v1/messages?beta=true", b, {{"accept", "application/json"}});
  std::string text = StreamText(r);
  EXPECT_EQ(r.headers["cache-control"], "no-cache");
  EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
  HttpResult n = Post(s, "/v1/messages", Hi());
  EXPECT_EQ(text, Json::parse(n.body)["content"][0]["text"]);
  auto frames = ParseSse(r.body);
  auto start = Json::parse(frames[0].data);
  EXPECT_EQ(start["message"]["usage"]["input_tokens"], Json::parse(n.body)["usage"]["input_tokens"]);
  auto delta = Json::parse(frames[frames.size() - 2].data);
  EXPECT_EQ(delta["usage"]["output_tokens"], 23);
  EXPECT_EQ(delta["delta"]["stop_reason"], "end_turn");
}

TEST(Messages, EquivalentFormsGiveSameUsageAndOutput) {  // §8.2
  TestServer s;
  Json a = Hi();
  a["system"] = "Be brief.";
  Json b = Hi();
  b["messages"][0]["content"] = Json::parse(R"([{"type":"text","text":"Say hi"}])");
  b["system"] = Json::parse(R"([{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}])");
  auto ja = Json::parse(Post(s, "/v1/messages", a).body);
  auto jb = Json::parse(Post(s, "/v1/messages", b).body);
  EXPECT_EQ(ja["usage"]["input_tokens"], jb["usage"]["input_tokens"]);
  EXPECT_EQ(ja["content"], jb["content"]);
}

TEST(Messages, MaxTokensStreamAndNot) {  // §8.5
  TestServer s;
  auto j = Json::parse(Post(s, "/v1/messages", Hi(5)).body);
  EXPECT_EQ(j["stop_reason"], "max_tokens");
  EXPECT_LE(j["usage"]["output_tokens"].get<int>(), 5);
  Json b = Hi(5);
  b["stream"] = true;
  HttpResult r = Post(s, "/v1/messages", b);
  EXPECT_EQ(StreamText(r), "Hi! I");
  EXPECT_NE(r.body.find(R"("stop_reason":"max_tokens")"), std::string::npos);
}

TEST(Messages, StopSequences) {  // §8.6
  TestServer s;
  Json b = Json::parse(R"({"model":"m","max_tokens":64,"stop_sequences":["7"],"messages":[{"role":"user","content":"count 1 to 10"}]})");
  auto j = Json::parse(Post(s, "/v1/messages", b).body);
  EXPECT_EQ(j["stop_reason"], "stop_sequence");
  EXPECT_EQ(j["stop_sequence"], "7");
  EXPECT_EQ(j["content"][0]["text"].get<std::string>().find('7'), std::string::npos);
  b["stream"] = true;
  HttpResult r = Post(s, "/v1/messages", b);
  std::string text = StreamText(r);
  EXPECT_EQ(text, "1, 2, 3, 4, 5, 6, ");
  EXPECT_NE(r.body.find(R"("stop_sequence":"7")"), std::string::npos);
}

Json WeatherRequest() {
  return Json::parse(R"({"model":"m","max_tokens":500,
    "tools":[{"name":"get_weather","description":"Weather for a city","input_schema":{"type":"object",
              "properties":{"city":{"type":"string"},"unit":{"type":"string"}},"required":["city"]}}],
    "messages":[{"role":"user","content":"What is the weather in Paris?"}]})");
}

TEST(Messages, ToolUseNonStreamAndStream) {  // §8.7, §8.8 (parsing side; forcing: tests/api/constrained_pipeline_test.cpp)
  TestServer s;
  Json b = WeatherRequest();
  b["tool_choice"] = Json::parse(R"({"type":"tool","name":"get_weather","disable_parallel_tool_use":true})");
  auto j = Json::parse(Post(s, "/v1/messages", b).body);
  EXPECT_NE(s.world->engine.last_request().constraint, nullptr);  // forced by constrained decoding
  EXPECT_EQ(j["stop_reason"], "tool_use");
  int tool_uses = 0;
  for (auto& c : j["content"]) {
    if (c["type"] != "tool_use") {
      EXPECT_EQ(c["text"].get<std::string>().find("<tool_call>"), std::string::npos);
      continue;
    }
    ++tool_uses;
    EXPECT_TRUE(std::regex_match(c["id"].get<std::string>(), std::regex("^toolu_[A-Za-z0-9_-]+$")));
    EXPECT_EQ(c["name"], "get_weather");
    EXPECT_EQ(c["input"]["city"], "Paris");
  }
  EXPECT_EQ(tool_uses, 1);
  b["stream"] = true;
  b["tool_choice"] = Json::parse(R"({"type":"auto"})");
  HttpResult r = Post(s, "/v1/messages", b);
  EXPECT_EQ(s.world->engine.last_request().constraint, nullptr);  // auto: the model decides
  StreamText(r);
  std::map<int, std::string> partial;
  for (const auto& f : ParseSse(r.body)) {
    auto e = Json::parse(f.data);
    if (f.event == "content_block_delta" && e["delta"]["type"] == "input_json_delta") {
      partial[e["index"].get<int>()] += e["delta"]["partial_json"].get<std::string>();
    }
  }
  ASSERT_EQ(partial.size(), 2u);  // two parallel calls
  EXPECT_EQ(Json::parse(partial.begin()->second)["city"], "Paris");
  EXPECT_EQ(Json::parse(partial.rbegin()->second)["city"], "Rome");
  EXPECT_NE(r.body.find(R"("stop_reason":"tool_use")"), std::string::npos);
  // tool_choice none: no tool_use blocks.
  b.erase("stream");
  b["tool_choice"] = Json::parse(R"({"type":"none"})");
  j = Json::parse(Post(s, "/v1/messages", b).body);
  for (auto& c : j["content"]) EXPECT_NE(c["type"], "tool_use");
}

TEST(Messages, ToolResultRoundTrip) {  // §8.9
  TestServer s;
  for (const char* result : {R"("18C and sunny")", R"([{"type":"text","text":"18C and sunny"}])"}) {
    Json b = WeatherRequest();
    b["messages"].push_back(Json::parse(R"({"role":"assistant","content":[{"type":"text","text":"Checking."},
        {"type":"tool_use","id":"toolu_abc","name":"get_weather","input":{"city":"Paris"}}]})"));
    b["messages"].push_back(Json::parse(std::string(R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_abc","content":)") +
                                        result + R"(},{"type":"text","text":"thanks"}]})"));
    HttpResult r = Post(s, "/v1/messages", b);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Json::parse(r.body)["content"][0]["text"], "The tool said: 18C and sunny");
  }
  Json b = WeatherRequest();
  b["messages"].push_back(Json::parse(R"({"role":"assistant","content":[{"type":"tool_use","id":"toolu_abc","name":"get_weather","input":{}}]})"));
  b["messages"].push_back(Json::parse(R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_abc","is_error":true,"content":"boom"}]})"));
  EXPECT_EQ(Post(s, "/v1/messages", b).status, 200);
}

TEST(Messages, HistoryErrors) {  // §8.10
  TestServer s;
  Json b = Json::parse(R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_nope","content":"x"}]}]})");
  ExpectError(Post(s, "/v1/messages", b), 400, "invalid_request_error", "messages.1.content.0:");
  EXPECT_EQ(Post(s, "/v1/messages", b).headers["x-should-retry"], "false");
  Json c = Json::parse(R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},
      {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},{"role":"user","content":"?"}]})");
  ExpectError(Post(s, "/v1/messages", c), 400, "invalid_request_error", "tool_use ids were found without tool_result");
}

TEST(Messages, ThinkingBlocks) {  // §8.11, §8.12
  TestServer s;
  Json b = Hi(4096);
  b["thinking"] = Json::parse(R"({"type":"enabled","budget_tokens":2048})");
  auto j = Json::parse(Post(s, "/v1/messages", b).body);
  ASSERT_EQ(j["content"].size(), 2u) << j.dump();
  EXPECT_EQ(j["content"][0]["type"], "thinking");
  EXPECT_EQ(j["content"][0]["thinking"], "I should greet.");
  EXPECT_FALSE(j["content"][0]["signature"].get<std::string>().empty());
  EXPECT_EQ(j["content"][1]["text"], "Hello there!");
  b["stream"] = true;
  HttpResult r = Post(s, "/v1/messages", b);
  StreamText(r);
  size_t sig = r.body.find("signature_delta");
  EXPECT_NE(sig, std::string::npos);
  EXPECT_EQ(r.body.find("signature_delta", sig + 1), std::string::npos);
  b["thinking"] = Json::parse(R"({"type":"disabled"})");
  b.erase("stream");
  j = Json::parse(Post(s, "/v1/messages", b).body);
  for (auto& c : j["content"]) EXPECT_NE(c["type"], "thinking");
  b["thinking"] = Json::parse(R"({"type":"adaptive"})");
  b["output_config"] = Json::parse(R"({"effort":"low"})");
  EXPECT_EQ(Post(s, "/v1/messages", b).status, 200);
  // History with our signature, a foreign one and redacted thinking.
  Json h = Hi();
  h["messages"].push_back({{"role", "assistant"}, {"content", Json::parse(R"([{"type":"thinking","thinking":"x","signature":"foreign"},
      {"type":"redacted_thinking","data":"opaque"},{"type":"text","text":"Hi"}])")}});
  h["messages"].push_back(Json::parse(R"({"role":"user","content":"again"})"));
  EXPECT_EQ(Post(s, "/v1/messages", h).status, 200);
}

TEST(Messages, PrefillAndOddHistories) {  // §8.13, §8.14
  TestServer s;
  Json b = Json::parse(R"({"model":"m","max_tokens":20,"messages":[{"role":"user","content":"Complete"},
      {"role":"assistant","content":"The capital of France is"}]})");
  EXPECT_EQ(Json::parse(Post(s, "/v1/messages", b).body)["content"][0]["text"], " Paris.");
  Json c = Json::parse(R"({"model":"m","max_tokens":20,"messages":[{"role":"assistant","content":"Hello!"},
      {"role":"user","content":"one"},{"role":"user","content":"two"},{"role":"system","content":"be nice"},
      {"role":"user","content":"three"},{"role":"system","content":"reminder as the last message"}]})");
  EXPECT_EQ(Post(s, "/v1/messages", c).status, 200);
}

TEST(Messages, ImagesAndDocuments) {  // §8.15
  TestServer s;
  Json b = Hi();
  b["messages"][0]["content"] = Json::parse(R"([{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}])");
  ExpectError(Post(s, "/v1/messages", b), 400, "invalid_request_error", "image");
  b["messages"][0]["content"] = Json::parse(R"([{"type":"document","source":{"type":"text","media_type":"text/plain","data":"A doc."}}])");
  EXPECT_EQ(Post(s, "/v1/messages", b).status, 200);
  b["messages"][0]["content"] = Json::parse(R"([{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}])");
  ExpectError(Post(s, "/v1/messages", b), 400, "invalid_request_error", "pdf");
}

TEST(Messages, CountTokensMatchesBilledInput) {  // §8.16
  TestServer s;
  Json b = WeatherRequest();
  b["tool_choice"] = Json::parse(R"({"type":"tool","name":"get_weather"})");
  Json msg = Json::parse(Post(s, "/v1/messages", b).body);
  Json count_body = b;
  count_body.erase("max_tokens");
  HttpResult c = Post(s, "/v1/messages/count_tokens?beta=true", count_body, {{"anthropic-beta", "token-counting-2024-11-01"}});
  ASSERT_EQ(c.status, 200) << c.body;
  auto u = msg["usage"];
  EXPECT_EQ(Json::parse(c.body)["input_tokens"],
            u["input_tokens"].get<int>() + u["cache_read_input_tokens"].get<int>() + u["cache_creation_input_tokens"].get<int>());
  ExpectError(Post(s, "/v1/messages/count_tokens", Json::parse(R"({"model":"m"})")), 400, "invalid_request_error", "messages");
}

TEST(Messages, Models) {  // §8.17
  server::ServiceOptions o;
  o.model_id = "local-model";
  o.aliases["claude-sonnet-4-5"] = "local-model";
  TestServer s(o);
  HttpResult r = Request(s.port, "GET", "/v1/models?limit=20");
  ASSERT_EQ(r.status, 200);
  auto j = Json::parse(r.body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["has_more"], false);
  ASSERT_EQ(j["data"].size(), 2u);
  for (auto& m : j["data"]) {
    for (const char* k : {"id", "display_name", "created_at", "max_input_tokens", "object", "created", "owned_by"}) EXPECT_TRUE(m.contains(k)) << k;
    EXPECT_EQ(m["type"], "model");
    EXPECT_TRUE(std::regex_match(m["created_at"].get<std::string>(), std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$)")));
  }
  EXPECT_EQ(j["first_id"], "local-model");
  EXPECT_EQ(Request(s.port, "GET", "/v1/models/claude-sonnet-4-5").status, 200);
  ExpectError(Request(s.port, "GET", "/v1/models/nope"), 404, "not_found_error");
}

TEST(Messages, Auth) {  // §8.18
  server::ServiceOptions o;
  o.api_key = "sekrit";
  TestServer s(o);
  ExpectError(Post(s, "/v1/messages", Hi()), 401, "authentication_error");
  EXPECT_EQ(Post(s, "/v1/messages", Hi(), {{"x-api-key", "sekrit"}}).status, 200);
  EXPECT_EQ(Post(s, "/v1/messages", Hi(), {{"Authorization", "Bearer sekrit"}}).status, 200);
  ExpectError(Post(s, "/v1/messages", Hi(), {{"x-api-key", "wrong"}}), 401, "authentication_error");
  EXPECT_EQ(Request(s.port, "HEAD", "/").status, 200);  // probes need no key
}

TEST(Messages, BadRequestsKeepServerHealthy) {  // §8.19, §8.20, §8.21 over HTTP
  TestServer s;
  HttpResult r = Request(s.port, "POST", "/v1/messages", "{not json");
  ExpectError(r, 400, "invalid_request_error");
  EXPECT_EQ(r.headers["x-should-retry"], "false");
  ExpectError(Request(s.port, "POST", "/v1/messages", "{\"model\":\"\xff\xfe\"}"), 400, "invalid_request_error");
  ExpectError(Request(s.port, "POST", "/v1/messages", "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}"), 400,
              "invalid_request_error", "deeper");
  Json b = Hi();
  b.erase("max_tokens");
  ExpectError(Post(s, "/v1/messages", b), 400, "invalid_request_error", "max_tokens");
  b["max_tokens"] = "10";
  ExpectError(Post(s, "/v1/messages", b), 400, "invalid_request_error", "max_tokens");
  b["max_tokens"] = 0;
  HttpResult zero = Post(s, "/v1/messages", b);
  ASSERT_EQ(zero.status, 200);
  EXPECT_EQ(Json::parse(zero.body)["content"], Json::array());
  for (const char* bad : {R"({"model":"m","max_tokens":5})", R"({"model":"m","max_tokens":5,"messages":[]})",
                          R"({"model":"m","max_tokens":5,"messages":[{"role":"tool","content":"x"}]})",
                          R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":" "}]}]})",
                          R"({"model":"m","max_tokens":5,"temperature":5,"messages":[{"role":"user","content":"x"}]})",
                          R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":42}]})"}) {
    ExpectError(Request(s.port, "POST", "/v1/messages", bad), 400, "invalid_request_error");
  }
  ExpectError(Request(s.port, "GET", "/v1/nothing"), 404, "not_found_error");
  EXPECT_EQ(Post(s, "/v1/messages", Hi()).status, 200);  // still serving
}

TEST(Messages, PromptTooLongAndClamp) {  // §8.24, §8.25
  TestServer s({}, {}, /*ctx=*/128);
  Json b = Hi();
  b["messages"][0]["content"] = std::string(300, 'x');
  HttpResult r = Post(s, "/v1/messages", b);
  ExpectError(r, 400, "invalid_request_error");
  EXPECT_TRUE(std::regex_match(Json::parse(r.body)["error"]["message"].get<std::string>(),
                               std::regex(R"(prompt is too long: \d+ tokens > 128 maximum)")));
  Json c = Hi(32000);
  c["messages"][0]["content"] = "tell a long story";
  auto j = Json::parse(Post(s, "/v1/messages", c).body);
  EXPECT_EQ(j["stop_reason"], "max_tokens");
  EXPECT_EQ(j["usage"]["input_tokens"].get<int>() + j["usage"]["output_tokens"].get<int>(), 128);
}

TEST(Messages, ToleranceOfClaudeCodeExtras) {  // §8.31
  TestServer s;
  Json b = Hi();
  b["metadata"] = {{"user_id", "{\"device_id\":\"d\"}"}};
  b["service_tier"] = "auto";
  b["context_management"] = Json::parse(R"({"edits":[{"type":"clear_thinking_20251015","keep":"all"}]})");
  b["cache_control"] = {{"type", "ephemeral"}};
  b["output_config"] = Json::parse(R"({"format":{"type":"json_schema","schema":{"type":"object"}}})");
  b["tools"] = Json::parse(R"([{"type":"web_search_20250305","name":"web_search","max_uses":3}])");
  HttpResult r = Request(s.port, "POST", "/v1/messages?beta=true", b.dump(),
                         {{"anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14,context-1m-2025-08-07,"
                                             "a,b,c,d,e,f,unknown-beta-2099-01-01"},
                          {"x-app", "cli"}, {"user-agent", "claude-cli/2.1.197 (external, sdk-cli)"}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Request(s.port, "POST", "/v1/v1/messages", Hi().dump()).status, 200);  // base URL ending in /v1
}

TEST(Messages, Utf8SplitAcrossTokens) {  // §8.30
  TestServer s;
  Json b = Hi();
  b["messages"][0]["content"] = "say an emoji";
  std::string full = Json::parse(Post(s, "/v1/messages", b).body)["content"][0]["text"];
  EXPECT_EQ(full, "héllo 👋 世界 ✓");
  b["stream"] = true;
  EXPECT_EQ(StreamText(Post(s, "/v1/messages", b)), full);
}

TEST(Messages, MidStreamFailureIsErrorEvent) {  // §8.29
  TestServer s;
  Json b = Hi();
  b["messages"][0]["content"] = "please fail midway";
  b["stream"] = true;
  HttpResult r = Post(s, "/v1/messages", b);
  StreamText(r, /*allow_error=*/true);
  auto frames = ParseSse(r.body);
  EXPECT_EQ(frames.back().event, "error");
  EXPECT_EQ(Json::parse(frames.back().data)["error"]["type"], "api_error");
  EXPECT_EQ(r.body.find("message_stop"), std::string::npos);
  b.erase("stream");
  ExpectError(Post(s, "/v1/messages", b), 500, "api_error");
}

TEST(Messages, KeepAlivesDuringSlowPrefill) {  // §8.28 and the Claude Code watchdog rule
  server::ServiceOptions o;
  o.keepalive_ms = 300;
  TestServer s(o);
  Json b = Hi();
  b["messages"][0]["content"] = "slow prefill please";
  b["stream"] = true;
  HttpResult r = Post(s, "/v1/messages", b);
  EXPECT_EQ(StreamText(r), "Done after a slow prefill.");
  auto frames = ParseSse(r.body);
  EXPECT_EQ(frames[0].event, "message_start");
  int pings = 0, empty_deltas = 0;
  for (const auto& f : frames) {
    pings += f.event == "ping";
    if (f.event == "content_block_delta" && f.data.find(R"("text":"")") != std::string::npos) ++empty_deltas;
  }
  EXPECT_GE(pings, 2);
  EXPECT_GE(empty_deltas, 2);
}

TEST(Messages, HeadAndHealthAndMetrics) {
  TestServer s;
  HttpResult h = Request(s.port, "HEAD", "/");
  EXPECT_EQ(h.status, 200);
  EXPECT_TRUE(h.body.empty());
  EXPECT_EQ(Request(s.port, "GET", "/").status, 200);
  HttpResult health = Request(s.port, "GET", "/health");
  EXPECT_EQ(Json::parse(health.body)["status"], "ok");
  Post(s, "/v1/messages", Hi());
  HttpResult m = Request(s.port, "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("pensieve_requests_total{endpoint=\"/v1/messages\",code=\"200\"} 1"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("# TYPE pensieve_queue_depth gauge"), std::string::npos);
  EXPECT_NE(m.body.find("pensieve_generated_tokens_total 23"), std::string::npos);  // with the end-of-turn token
}

}  // namespace
}  // namespace pensieve::test

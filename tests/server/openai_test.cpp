// /v1/chat/completions and /v1/completions over HTTP against the fake engine (anthropic-api.md §6, §8.34).
#include <gtest/gtest.h>

#include "fakes/http_client.h"
#include "fakes/sse_validator.h"
#include "fakes/test_server.h"

namespace pensieve::test {
namespace {

using Json = nlohmann::json;

// The `data:` payloads of an OpenAI stream; checks the framing (no event: lines, ends with [DONE]).
std::vector<Json> Chunks(const HttpResult& r) {
  EXPECT_EQ(r.status, 200) << r.raw;
  std::vector<Json> out;
  auto frames = ParseSse(r.body);
  EXPECT_FALSE(frames.empty());
  if (frames.empty()) return out;
  EXPECT_EQ(frames.back().data, "[DONE]");
  for (size_t i = 0; i + 1 < frames.size(); ++i) {
    EXPECT_TRUE(frames[i].event.empty());
    out.push_back(Json::parse(frames[i].data));
  }
  return out;
}

TEST(OpenAI, ChatNonStreamWithUsage) {
  TestServer s;
  HttpResult r = Request(s.port, "POST", "/v1/chat/completions",
                         R"({"model":"gpt-x","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hi"}],"seed":7})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = Json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "gpt-x");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hi! I am a fake model.");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["completion_tokens"], 23);  // 22 byte tokens and the end-of-turn token
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + 23);
  EXPECT_EQ(s.world->engine.last_request().sampling.seed, 7u);
}

TEST(OpenAI, ChatStreamIncludeUsage) {  // §8.34
  TestServer s;
  HttpResult r = Request(s.port, "POST", "/v1/chat/completions",
                         R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hi"}]})");
  auto chunks = Chunks(r);
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  std::string id = chunks[0]["id"];
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i]["id"], id);
    EXPECT_EQ(chunks[i]["object"], "chat.completion.chunk");
    EXPECT_TRUE(chunks[i]["usage"].is_null());
    auto& d = chunks[i]["choices"][0]["delta"];
    if (d.contains("content")) text += d["content"].get<std::string>();
  }
  EXPECT_EQ(text, "Hi! I am a fake model.");
  EXPECT_EQ(chunks[chunks.size() - 2]["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(chunks.back()["choices"].empty());
  EXPECT_EQ(chunks.back()["usage"]["completion_tokens"], 23);
}

// The OpenAI stream's keep-alive is an SSE comment line (no chunk), sent while the prefill writes nothing.
TEST(OpenAI, KeepAlivesDuringSlowPrefill) {
  server::ServiceOptions o;
  o.keepalive_ms = 300;
  TestServer s(o);
  HttpResult r = Request(s.port, "POST", "/v1/chat/completions",
                         R"({"model":"m","stream":true,"messages":[{"role":"user","content":"slow prefill please"}]})");
  auto chunks = Chunks(r);
  std::string text;
  for (const auto& c : chunks) {
    if (c["choices"].empty()) continue;
    auto& d = c["choices"][0]["delta"];
    if (d.contains("content")) text += d["content"].get<std::string>();
  }
  EXPECT_EQ(text, "Done after a slow prefill.");
  int keepalives = 0;
  const std::string comment = ": keep-alive\n\n";
  for (size_t p = r.body.find(comment); p != std::string::npos; p = r.body.find(comment, p + 1)) ++keepalives;
  EXPECT_GE(keepalives, 2) << r.body;
}

TEST(OpenAI, ToolCallsStreamAndNonStream) {  // §8.34
  TestServer s;
  Json b = Json::parse(R"({"model":"m","max_tokens":500,"messages":[{"role":"user","content":"weather in Paris?"}],
     "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]})");
  auto j = Json::parse(Request(s.port, "POST", "/v1/chat/completions", b.dump()).body);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  auto calls = j["choices"][0]["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["type"], "function");
  EXPECT_EQ(Json::parse(calls[0]["function"]["arguments"].get<std::string>())["city"], "Paris");
  b["stream"] = true;
  b["parallel_tool_calls"] = false;
  auto chunks = Chunks(Request(s.port, "POST", "/v1/chat/completions", b.dump()));
  std::map<int, std::string> args;
  std::map<int, std::string> names;
  for (auto& c : chunks) {
    if (c["choices"].empty()) continue;
    auto& d = c["choices"][0]["delta"];
    if (!d.contains("tool_calls")) continue;
    for (auto& tc : d["tool_calls"]) {
      int idx = tc["index"];
      if (tc.contains("id")) names[idx] = tc["function"]["name"];
      args[idx] += tc["function"]["arguments"].get<std::string>();
    }
  }
  ASSERT_EQ(args.size(), 1u);  // parallel_tool_calls false
  EXPECT_EQ(names[0], "get_weather");
  EXPECT_EQ(Json::parse(args[0])["city"], "Paris");
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "tool_calls");
}

TEST(OpenAI, ToolHistoryAndStop) {
  TestServer s;
  HttpResult r = Request(s.port, "POST", "/v1/chat/completions", R"({"model":"m","messages":[
      {"role":"user","content":"weather?"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"18C"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["choices"][0]["message"]["content"], "The tool said: 18C");
  r = Request(s.port, "POST", "/v1/chat/completions", R"({"model":"m","stop":["7"],"messages":[{"role":"user","content":"count 1 to 10"}]})");
  EXPECT_EQ(Json::parse(r.body)["choices"][0]["message"]["content"], "1, 2, 3, 4, 5, 6, ");
}

TEST(OpenAI, ErrorsUseOpenAIEnvelope) {  // §8.34
  TestServer s;
  for (const char* bad : {R"({"model":"m","n":2,"messages":[{"role":"user","content":"x"}]})",
                          R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", R"({"model":"m"})", "{bad json",
                          R"({"model":"m","temperature":3,"messages":[{"role":"user","content":"x"}]})",
                          R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x"}}]}]})"}) {
    HttpResult r = Request(s.port, "POST", "/v1/chat/completions", bad);
    EXPECT_EQ(r.status, 400) << bad;
    auto j = Json::parse(r.body);
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << r.body;
    EXPECT_TRUE(j["error"].contains("message") && j["error"].contains("param") && j["error"].contains("code"));
  }
}

TEST(OpenAI, LogprobsAndJsonMode) {
  TestServer s;
  HttpResult r = Request(s.port, "POST", "/v1/chat/completions",
                         R"({"model":"m","logprobs":true,"top_logprobs":2,"max_tokens":4,"messages":[{"role":"user","content":"Say hi"}]})");
  auto j = Json::parse(r.body);
  auto content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 4u) << r.body;
  EXPECT_EQ(content[0]["token"], "H");
  EXPECT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(s.world->engine.last_request().sampling.top_logprobs, 2);
  EXPECT_EQ(s.world->engine.last_request().constraint, nullptr);  // free text
  r = Request(s.port, "POST", "/v1/chat/completions",
              R"({"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Say hi"}]})");
  EXPECT_EQ(r.status, 200);
  // JSON mode is enforced by constrained decoding, not only asked for (tests/api/constrained_pipeline_test.cpp
  // shows what the constraint does with a real engine).
  EXPECT_NE(s.world->engine.last_request().constraint, nullptr);
}

TEST(OpenAI, CompletionsEndpoint) {
  TestServer s;
  HttpResult r = Request(s.port, "POST", "/v1/completions", R"({"model":"m","prompt":"Once upon","max_tokens":5})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = Json::parse(r.body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "Hi! I");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 9);  // raw prompt, no template: 9 bytes
  auto chunks = Chunks(Request(s.port, "POST", "/v1/completions", R"({"model":"m","prompt":"Once upon","max_tokens":5,"stream":true})"));
  std::string text;
  for (auto& c : chunks) text += c["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, "Hi! I");
}

}  // namespace
}  // namespace pensieve::test

// The chat pipeline over the fake engine: stop sequences, max_tokens, context limits, thinking, tool calls,
// prefill, and the Anthropic stream encoder's grammar on each.
#include <gtest/gtest.h>

#include <regex>

#include "api/anthropic.h"
#include "fakes/fake_model.h"
#include "fakes/run_pipeline.h"
#include "fakes/sse_validator.h"

namespace pensieve::api {
namespace {

using test::FakeWorld;

using test::RunAll;

ChatRequest User(const std::string& text, int max_tokens = 100) {
  ChatRequest r;
  r.model = "m";
  r.max_tokens = max_tokens;
  r.thinking = false;
  r.messages.push_back(ChatMessage::Text(ChatMessage::Role::kUser, text));
  return r;
}

std::string Text(const std::vector<ChatEvent>& events, ChatEvent::Kind kind = ChatEvent::Kind::kText) {
  std::string s;
  for (const auto& e : events) {
    if (e.kind == kind) s += e.text;
  }
  return s;
}

std::string Encode(const std::vector<ChatEvent>& events, int input_tokens) {
  AnthropicStreamEncoder enc("msg_x", "m", false);
  std::string sse = enc.Start(input_tokens);
  for (const auto& e : events) sse += enc.Event(e);
  return sse;
}

TEST(Pipeline, PlainAnswerEndsTurnWithUsage) {
  FakeWorld w;
  ChatRequest r = User("Say hi");
  auto events = RunAll(w.pipeline, r);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(Text(events), "Hi! I am a fake model.");
  const ChatEvent& f = events.back();
  ASSERT_EQ(f.kind, ChatEvent::Kind::kFinish);
  EXPECT_EQ(f.stop_reason, StopReason::kEndTurn);
  // The text's byte tokens and the end-of-turn token.
  EXPECT_EQ(f.usage.output_tokens, static_cast<int>(std::string("Hi! I am a fake model.").size()) + 1);
  EXPECT_EQ(f.usage.prompt_tokens(), w.pipeline.CountTokens(r));
  EXPECT_EQ(test::ValidateAnthropicSse(Encode(events, f.usage.prompt_tokens())), "");
}

// Fields a request leaves out take the model's generation_config defaults; fields it sets are kept.
TEST(Pipeline, ModelSamplingDefaultsFillOnlyUnsetFields) {
  FakeWorld w;
  SamplingDefaults d;
  d.temperature = 0.0f;
  d.top_k = 20;
  ChatPipeline p(w.engine, w.tokenizer, test::FakeRender,
                 [](const chat::ParserConfig& c) { return std::make_unique<test::FakeParser>(c.starts_in_reasoning); },
                 PipelineConfig{{test::FakeTokenizer::kEos}, chat::ParserConfig{chat::ToolFormat::kHermes, true, false}, false, d});
  ChatRequest r = User("Say hi");
  r.sampling.temperature = 1.0f;  // the API default, not set by the client
  RunAll(p, r);
  EXPECT_EQ(w.engine.last_request().sampling.temperature, 0.0f);
  EXPECT_EQ(w.engine.last_request().sampling.top_k, 20);
  r.sampling.temperature = 0.7f;
  r.sampling_set.temperature = true;
  RunAll(p, r);
  EXPECT_FLOAT_EQ(w.engine.last_request().sampling.temperature, 0.7f);
  EXPECT_EQ(w.engine.last_request().sampling.top_k, 20);
  r.sampling_set.top_k = true;
  r.sampling.top_k = 0;
  RunAll(p, r);
  EXPECT_EQ(w.engine.last_request().sampling.top_k, 0);
}

TEST(Pipeline, StopSequenceNeverEmitted) {  // §8.6
  FakeWorld w;
  ChatRequest r = User("count 1 to 10");
  r.stop = {"7"};
  auto events = RunAll(w.pipeline, r);
  EXPECT_EQ(Text(events), "1, 2, 3, 4, 5, 6, ");
  EXPECT_EQ(events.back().stop_reason, StopReason::kStopSequence);
  EXPECT_EQ(events.back().stop_sequence, "7");
  // Multi-character stop spanning token boundaries (the fake tokenizer is byte-level).
  r.stop = {"4, 5"};
  events = RunAll(w.pipeline, r);
  EXPECT_EQ(Text(events), "1, 2, 3, ");
  EXPECT_EQ(events.back().stop_sequence, "4, 5");
}

TEST(Pipeline, MaxTokens) {  // §8.5
  FakeWorld w;
  auto events = RunAll(w.pipeline, User("Say hi", 5));
  EXPECT_EQ(Text(events), "Hi! I");
  EXPECT_EQ(events.back().stop_reason, StopReason::kMaxTokens);
  EXPECT_EQ(events.back().usage.output_tokens, 5);
}

TEST(Pipeline, MaxPromptTokensBelowTheContext) {  // issue 14, defect 9: serve --max-prompt-tokens
  FakeWorld w(/*ctx=*/4096);
  api::PipelineConfig config{{test::FakeTokenizer::kEos}, chat::ParserConfig{chat::ToolFormat::kHermes, true, false}, false, {}};
  config.max_prompt_tokens = 40;
  api::ChatPipeline limited(w.engine, w.tokenizer, test::FakeRender,
                            [](const chat::ParserConfig& c) { return std::make_unique<test::FakeParser>(c.starts_in_reasoning); }, config);
  try {
    limited.Prepare(User(std::string(100, '[')));
    FAIL() << "accepted";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_TRUE(std::regex_search(std::string(e.what()), std::regex(R"(^prompt is too long: \d+ tokens > 40 maximum$)"))) << e.what();
  }
  const PreparedPrompt p = limited.Prepare(User("hi", 32000));
  EXPECT_LE(static_cast<int>(p.tokens.size()), 40);
  EXPECT_EQ(p.max_tokens, 4096 - static_cast<int>(p.tokens.size()));  // generation still has the whole context
}

TEST(Pipeline, MaxTokensZeroProducesNothing) {  // §8.20
  FakeWorld w;
  auto events = RunAll(w.pipeline, User("Say hi", 0));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, ChatEvent::Kind::kFinish);
  EXPECT_EQ(events[0].usage.output_tokens, 0);
  EXPECT_GT(events[0].usage.prompt_tokens(), 0);
}

TEST(Pipeline, PromptTooLongAndClamp) {  // §8.24, §8.25
  FakeWorld w(/*ctx=*/64);
  try {
    w.pipeline.Prepare(User(std::string(100, 'x')));
    FAIL();
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_TRUE(std::regex_search(std::string(e.what()), std::regex(R"(^prompt is too long: \d+ tokens > 64 maximum$)"))) << e.what();
  }
  ChatRequest r = User("long story", 32000);
  PreparedPrompt p = w.pipeline.Prepare(r);
  EXPECT_EQ(p.max_tokens, 64 - static_cast<int>(p.tokens.size()));
  auto events = RunAll(w.pipeline, r);
  EXPECT_EQ(events.back().stop_reason, StopReason::kMaxTokens);
  EXPECT_EQ(events.back().usage.output_tokens, p.max_tokens);
}

TEST(Pipeline, ThinkingThenText) {  // §8.11
  FakeWorld w;
  ChatRequest r = User("Say hi");
  r.thinking = true;
  PreparedPrompt p = w.pipeline.Prepare(r);
  EXPECT_TRUE(p.starts_in_reasoning);
  auto events = RunAll(w.pipeline, r);
  EXPECT_EQ(Text(events, ChatEvent::Kind::kThinking), "I should greet.");
  EXPECT_EQ(Text(events), "Hello there!");
  std::string sse = Encode(events, 10);
  EXPECT_EQ(test::ValidateAnthropicSse(sse), "");
  EXPECT_NE(sse.find("signature_delta"), std::string::npos);
}

TEST(Pipeline, ToolCallsAndParallelLimit) {  // §8.7, §8.8
  FakeWorld w;
  ChatRequest r = User("what is the weather in Paris and Rome", 1000);
  r.tools.push_back({"get_weather", "Weather", Json::parse(R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})")});
  auto events = RunAll(w.pipeline, r);
  int starts = 0;
  std::string args;
  for (const auto& e : events) {
    if (e.kind == ChatEvent::Kind::kToolStart) {
      ++starts;
      EXPECT_EQ(e.text, "get_weather");
      EXPECT_TRUE(std::regex_match(e.tool_id, std::regex("^toolu_[A-Za-z0-9_-]+$")));
    }
    if (e.kind == ChatEvent::Kind::kToolArgs && e.tool_index == 0) args += e.text;
  }
  EXPECT_EQ(starts, 2);
  EXPECT_EQ(Json::parse(args)["city"], "Paris");
  EXPECT_EQ(Text(events), "Let me check. ");
  EXPECT_EQ(events.back().stop_reason, StopReason::kToolUse);
  EXPECT_EQ(Text(events).find("<tool_call>"), std::string::npos);
  EXPECT_EQ(test::ValidateAnthropicSse(Encode(events, 10)), "");

  r.tool_choice.disable_parallel = true;
  events = RunAll(w.pipeline, r);
  starts = 0;
  for (const auto& e : events) starts += e.kind == ChatEvent::Kind::kToolStart;
  EXPECT_EQ(starts, 1);
  EXPECT_EQ(events.back().stop_reason, StopReason::kToolUse);

  r.tool_choice.mode = ToolChoice::Mode::kNone;  // tools are not rendered, so the fake answers plainly
  events = RunAll(w.pipeline, r);
  starts = 0;
  for (const auto& e : events) starts += e.kind == ChatEvent::Kind::kToolStart;
  EXPECT_EQ(starts, 0);
  EXPECT_EQ(events.back().stop_reason, StopReason::kEndTurn);
}

// The fake engine and template with the real output parser (Hermes syntax), as the built-in model runs.
struct RealParserWorld {
  test::FakeTokenizer tokenizer;
  test::FakeEngine engine{test::ScriptFor};
  ChatPipeline pipeline{engine, tokenizer, test::FakeRender,
                        [](const chat::ParserConfig& c) { return chat::MakeOutputParser(c); },
                        PipelineConfig{{test::FakeTokenizer::kEos}, chat::ParserConfig{chat::ToolFormat::kHermes, false, false},
                                       false, {}}};
};

int ToolStarts(const std::vector<ChatEvent>& events) {
  int n = 0;
  for (const auto& e : events) n += e.kind == ChatEvent::Kind::kToolStart;
  return n;
}

// Issue 14, defect 10: a call that cannot be reported as one comes back as text, never lost, never invalid JSON.
TEST(Pipeline, UndeclaredOrBrokenToolCallsAreText) {
  RealParserWorld w;
  const Json weather = Json::parse(R"({"type":"object","properties":{"city":{"type":"string"}}})");
  const std::string rocket = "<tool_call>\n{\"name\": \"launch_rocket\", \"arguments\": {\"when\": \"now\"}}\n</tool_call>";
  // No tools at all (was: the call vanished, leaving empty content and end_turn).
  ChatRequest r = User("launch the rocket", 200);
  auto events = RunAll(w.pipeline, r);
  EXPECT_EQ(ToolStarts(events), 0);
  EXPECT_EQ(Text(events), "Sure. " + rocket);
  EXPECT_EQ(events.back().stop_reason, StopReason::kEndTurn);
  // Tools declared, but not this one.
  r.tools.push_back({"get_weather", "Weather", weather});
  events = RunAll(w.pipeline, r);
  EXPECT_EQ(ToolStarts(events), 0);
  EXPECT_EQ(Text(events), "Sure. " + rocket);
  EXPECT_EQ(events.back().stop_reason, StopReason::kEndTurn);
  // A declared tool whose arguments are not an object.
  r.messages.back() = ChatMessage::Text(ChatMessage::Role::kUser, "a sloppy call please");
  events = RunAll(w.pipeline, r);
  EXPECT_EQ(ToolStarts(events), 0);
  EXPECT_EQ(Text(events), "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": [\"Paris\"]}\n</tool_call>");
  // A declared tool cut off by max_tokens inside its arguments (was: arguments that were not closed JSON).
  const std::string call_head = "Let me check. <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par";
  r.messages.back() = ChatMessage::Text(ChatMessage::Role::kUser, "the weather in Paris");
  r.max_tokens = static_cast<int>(w.tokenizer.Encode(call_head).size());
  events = RunAll(w.pipeline, r);
  EXPECT_EQ(ToolStarts(events), 0);
  EXPECT_EQ(Text(events), "Let me check. <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par}\n</tool_call>");
  EXPECT_EQ(events.back().stop_reason, StopReason::kMaxTokens);
  // The same call complete is a call, reported whole with arguments that parse.
  r.max_tokens = 1000;
  r.tool_choice.disable_parallel = true;
  events = RunAll(w.pipeline, r);
  ASSERT_EQ(ToolStarts(events), 1);
  std::string args;
  for (const auto& e : events) {
    if (e.kind == ChatEvent::Kind::kToolArgs) args += e.text;
  }
  EXPECT_EQ(Json::parse(args), Json::parse(R"({"city": "Paris", "unit": "c"})"));
  EXPECT_EQ(events.back().stop_reason, StopReason::kToolUse);
}

TEST(Pipeline, PrefillContinuesAssistantText) {  // §8.13
  FakeWorld w;
  ChatRequest r = User("Complete it");
  r.messages.push_back(ChatMessage::Text(ChatMessage::Role::kAssistant, "The capital of France is"));
  PreparedPrompt p = w.pipeline.Prepare(r);
  EXPECT_TRUE(p.text.ends_with("<|assistant|>\nThe capital of France is"));
  auto events = RunAll(w.pipeline, r);
  EXPECT_EQ(Text(events), " Paris.");
}

TEST(Pipeline, PrefillTurnEndingAtOnceCountsItsEndToken) {  // issue 14: output_tokens >= 1, as the Anthropic API
  FakeWorld w;
  ChatRequest r = User("Finish it");
  r.messages.push_back(ChatMessage::Text(ChatMessage::Role::kAssistant, "That is all."));
  auto events = RunAll(w.pipeline, r);
  EXPECT_EQ(Text(events), "");
  EXPECT_EQ(events.back().stop_reason, StopReason::kEndTurn);
  EXPECT_EQ(events.back().usage.output_tokens, 1);
}

TEST(Pipeline, ErrorFromEngineBecomesErrorEvent) {  // §8.29
  FakeWorld w;
  auto events = RunAll(w.pipeline, User("fail midway"));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind, ChatEvent::Kind::kError);
  AnthropicStreamEncoder enc("msg_x", "m", false);
  std::string sse = enc.Start(3);
  for (const auto& e : events) sse += enc.Event(e);
  EXPECT_EQ(test::ValidateAnthropicSse(sse, /*allow_error=*/true), "");
  EXPECT_EQ(sse.find("message_stop"), std::string::npos);
}

TEST(AnthropicEncoder, KeepAliveOpensBlockWithEmptyDeltas) {
  AnthropicStreamEncoder enc("msg_x", "m", false);
  std::string sse = enc.KeepAlive();  // before message_start: ping only
  EXPECT_EQ(sse, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
  sse += enc.Start(5);
  sse += enc.KeepAlive();
  sse += enc.KeepAlive();
  EXPECT_NE(sse.find(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}})"), std::string::npos);
  ChatEvent t;
  t.kind = ChatEvent::Kind::kText;
  t.text = "hi";
  sse += enc.Event(t);
  ChatEvent f;
  f.kind = ChatEvent::Kind::kFinish;
  sse += enc.Event(f);
  EXPECT_EQ(test::ValidateAnthropicSse(sse), "");
  EXPECT_EQ(test::ParseSse(sse).size(), 11u);  // ping, start, (ping, block start, delta), (ping, delta), delta, stop, delta, stop
}

}  // namespace
}  // namespace pensieve::api

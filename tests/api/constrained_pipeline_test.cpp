// Constrained decoding end to end below HTTP: the chat pipeline over the real engine and a random-ish real
// model (stories260K knows nothing of tools or JSON), with the real output parser in every tool syntax.
// A forced tool (named or any) must come out as exactly one call of an allowed tool whose streamed arguments
// parse to a JSON object, stop reason tool_use, no text; json_object mode must give text that parses to one
// object, stop reason end_turn. Without the constraint these fail: the model writes stories.
#include <gtest/gtest.h>

#include <set>

#include "api/anthropic.h"
#include "api/pipeline.h"
#include "test_backend.h"
#include "chat/output_parser.h"
#include "engine/local_engine.h"
#include "fakes/fake_model.h"
#include "fakes/run_pipeline.h"
#include "fakes/sse_validator.h"
#include "test_paths.h"

namespace pensieve::api {
namespace {

struct RealWorld {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<ChatPipeline> pipeline;
  explicit RealWorld(chat::ToolFormat format) {
    const std::string dir = test::TestData("models/stories260K/stories260K-hf");
    tokenizer = LoadTokenizer(dir);
    auto backend = test::MakeTestBackend(1);
    model::LoadOptions lo;
    lo.kv_budget_bytes = 8 << 20;
    lo.max_batch_tokens = 64;
    auto model = model::Model::Load(dir, *backend, lo);  // before the backend is moved into the engine
    engine = engine::StartLocalEngine(std::move(model), {}, std::move(backend));
    PipelineConfig pc;
    pc.stop_token_ids = {*tokenizer->eos_id()};
    pc.parser.tools = format;
    pipeline = std::make_unique<ChatPipeline>(*engine, *tokenizer, test::FakeRender,
                                              [](const chat::ParserConfig& c) { return chat::MakeOutputParser(c); }, pc);
  }
};

using test::RunAll;

ChatRequest Request(std::optional<uint64_t> seed) {
  ChatRequest r;
  r.model = "m";
  r.max_tokens = 160;
  r.sampling.temperature = seed ? 1.0f : 0.0f;
  r.sampling.seed = seed;
  r.messages.push_back(ChatMessage::Text(ChatMessage::Role::kUser, "Once upon a time"));
  r.tools.push_back({"get_weather", "Weather", Json::parse(R"({"type":"object"})")});
  r.tools.push_back({"get_time", "Time", Json::parse(R"({"type":"object"})")});
  return r;
}

struct Call {
  int starts = 0, ends = 0;
  std::string name, args, text;
  StopReason stop = StopReason::kError;
};

Call Collect(const std::vector<ChatEvent>& events) {
  Call c;
  for (const auto& e : events) {
    if (e.kind == ChatEvent::Kind::kToolStart) ++c.starts, c.name = e.text;
    if (e.kind == ChatEvent::Kind::kToolArgs) c.args += e.text;
    if (e.kind == ChatEvent::Kind::kToolEnd) ++c.ends;
    if (e.kind == ChatEvent::Kind::kText) c.text += e.text;
    if (e.kind == ChatEvent::Kind::kFinish) c.stop = e.stop_reason;
  }
  return c;
}

TEST(ConstrainedPipeline, ForcedToolIsOneCallWithAnObjectInEveryToolSyntax) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  for (auto format : {chat::ToolFormat::kHermes, chat::ToolFormat::kLlama3Json, chat::ToolFormat::kMistral,
                      chat::ToolFormat::kPhi4Mini, chat::ToolFormat::kNone}) {
    SCOPED_TRACE("format " + std::to_string(static_cast<int>(format)));
    RealWorld w(format);
    std::set<std::string> any_names;
    for (std::optional<uint64_t> seed : {std::optional<uint64_t>(), std::optional<uint64_t>(1), std::optional<uint64_t>(2),
                                         std::optional<uint64_t>(3)}) {
      for (auto mode : {ToolChoice::Mode::kNamed, ToolChoice::Mode::kAny}) {
        ChatRequest r = Request(seed);
        r.tool_choice.mode = mode;
        r.tool_choice.name = mode == ToolChoice::Mode::kNamed ? "get_time" : "";
        auto events = RunAll(*w.pipeline, r);
        Call c = Collect(events);
        EXPECT_EQ(c.starts, 1);
        EXPECT_EQ(c.ends, 1);
        EXPECT_EQ(c.text, "");
        EXPECT_EQ(c.stop, StopReason::kToolUse);
        if (mode == ToolChoice::Mode::kNamed) {
          EXPECT_EQ(c.name, "get_time");
        } else {
          EXPECT_TRUE(c.name == "get_time" || c.name == "get_weather") << c.name;
          any_names.insert(c.name);
        }
        Json args = Json::parse(c.args, nullptr, false);
        EXPECT_TRUE(args.is_object()) << c.args;
        EXPECT_EQ(test::ValidateAnthropicSse([&] {
                    AnthropicStreamEncoder enc("msg_x", "m", false);
                    std::string sse = enc.Start(10);
                    for (const auto& e : events) sse += enc.Event(e);
                    return sse;
                  }()),
                  "");
      }
    }
    EXPECT_FALSE(any_names.empty());
  }
}

TEST(ConstrainedPipeline, JsonObjectModeGivesOneParseableObject) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  RealWorld w(chat::ToolFormat::kLlama3Json);  // its parser would take a bare {"name": ...} for a call
  for (std::optional<uint64_t> seed : {std::optional<uint64_t>(), std::optional<uint64_t>(5)}) {
    for (int max_tokens : {10, 60, 160}) {
      ChatRequest r = Request(seed);
      r.tools.clear();
      r.json_object = true;
      r.max_tokens = max_tokens;
      Call c = Collect(RunAll(*w.pipeline, r));
      EXPECT_EQ(c.starts, 0);
      Json j = Json::parse(c.text, nullptr, false);
      EXPECT_TRUE(j.is_object()) << c.text;
      EXPECT_EQ(c.text.substr(0, 1), "{");
      EXPECT_EQ(c.stop, StopReason::kEndTurn);
    }
  }
}

TEST(ConstrainedPipeline, AutoToolChoiceStaysFree) {
  PENSIEVE_REQUIRE_TEST_DATA("models/stories260K/stories260K-hf");
  RealWorld w(chat::ToolFormat::kHermes);
  ChatRequest r = Request(std::nullopt);
  r.max_tokens = 20;
  Call c = Collect(RunAll(*w.pipeline, r));  // auto: the story model just writes text
  EXPECT_EQ(c.starts, 0);
  EXPECT_FALSE(c.text.empty());
}

}  // namespace
}  // namespace pensieve::api

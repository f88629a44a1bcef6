// Output parsers: tool calls as real chat templates render them (shared/data/chat-templates), parsed back one
// character at a time and in other chunkings; reasoning; plain text with near-miss markup is never altered.
#include "chat/output_parser.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "test_paths.h"

namespace pensieve::chat {
namespace {

using Kind = OutputEvent::Kind;
using nlohmann::json;

struct Call {
  std::string name;
  std::string args;
};

struct Parsed {
  std::vector<OutputEvent> events;
  std::string text;
  std::string thinking;
  std::vector<Call> calls;
  bool well_formed = true;  // every kToolStart is followed by args and one kToolEnd
};

// Feeds `input` in pieces of the given sizes (cycled; 0 = whole text at once).
Parsed Run(const ParserConfig& config, std::string_view input, std::vector<size_t> sizes) {
  auto parser = MakeOutputParser(config);
  Parsed p;
  size_t pos = 0, k = 0;
  while (pos < input.size()) {
    size_t n = sizes.empty() || sizes[k % sizes.size()] == 0 ? input.size() : sizes[k % sizes.size()];
    ++k;
    std::vector<OutputEvent> chunk;
    parser->Feed(input.substr(pos, n), chunk);
    pos += n;
    p.events.insert(p.events.end(), chunk.begin(), chunk.end());
  }
  std::vector<OutputEvent> tail;
  parser->Finish(tail);
  p.events.insert(p.events.end(), tail.begin(), tail.end());
  // Merge adjacent events of the same text-like kind (across Feed calls), as a consumer would.
  std::vector<OutputEvent> merged;
  for (auto& e : p.events) {
    bool text_like = e.kind == Kind::kText || e.kind == Kind::kThinking || e.kind == Kind::kToolArgs;
    if (text_like && !merged.empty() && merged.back().kind == e.kind) {
      merged.back().text += e.text;
    } else {
      merged.push_back(e);
    }
  }
  p.events = merged;
  bool open = false;
  for (auto& e : p.events) {
    switch (e.kind) {
      case Kind::kText: p.text += e.text; break;
      case Kind::kThinking: p.thinking += e.text; break;
      case Kind::kToolStart:
        if (open) p.well_formed = false;
        open = true;
        p.calls.push_back({e.text, ""});
        break;
      case Kind::kToolArgs:
        if (!open) p.well_formed = false;
        if (!p.calls.empty()) p.calls.back().args += e.text;
        break;
      case Kind::kToolEnd:
        if (!open) p.well_formed = false;
        open = false;
        break;
    }
  }
  if (open) p.well_formed = false;
  return p;
}

std::string Describe(const std::vector<OutputEvent>& events) {
  std::ostringstream os;
  for (auto& e : events) os << static_cast<int>(e.kind) << ":" << json(e.text).dump() << " ";
  return os.str();
}

// Every chunking gives the same merged events as one character at a time.
Parsed RunAllChunkings(const ParserConfig& config, std::string_view input) {
  Parsed one = Run(config, input, {1});
  std::mt19937 rng(42);
  std::vector<size_t> random_sizes;
  for (int i = 0; i < 64; ++i) random_sizes.push_back(1 + rng() % 7);
  for (const auto& sizes : std::vector<std::vector<size_t>>{{0}, {2}, {3}, {5, 1, 4}, random_sizes}) {
    Parsed other = Run(config, input, sizes);
    EXPECT_EQ(Describe(other.events), Describe(one.events)) << "chunking changed the events for: " << input;
  }
  return one;
}

json LoadRendered() {
  std::ifstream in(test::TestData("chat-templates/real-templates.rendered.json"));
  if (!in) return json();
  return json::parse(in);
}

ParserConfig Config(ToolFormat tools, bool reasoning = false, bool starts_in = false) {
  ParserConfig c;
  c.tools = tools;
  c.reasoning = reasoning;
  c.starts_in_reasoning = starts_in;
  return c;
}

// The templates whose rendered tool-call round trips show a format we parse, and the format each must be
// detected as. (Command-R, functionary, DeepSeek and the rest render other or no tool-call syntax.)
const std::map<std::string, ToolFormat> kRoundTripTemplates = {
    {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", ToolFormat::kHermes},
    {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", ToolFormat::kHermes},
    {"Qwen-Qwen2.5-7B-Instruct", ToolFormat::kHermes},
    {"qwen3-tokenizer_config", ToolFormat::kHermes},
    {"meta-llama-Llama-3.1-8B-Instruct", ToolFormat::kLlama3Json},
    {"meta-llama-Llama-3.2-3B-Instruct", ToolFormat::kLlama3Json},
    {"meta-llama-Llama-3.3-70B-Instruct", ToolFormat::kLlama3Json},
    {"mistralai-Mistral-Nemo-Instruct-2407", ToolFormat::kMistral},
};

// Cuts the assistant's tool-call turn out of a rendered round trip: it starts after the last user message
// and the generation prompt (taken from the same template's "basic" case, which ends with the last user
// message followed by the generation prompt) and ends at the first end-of-turn marker.
std::string CutAssistantTurn(const json& roundtrip, const json& basic) {
  const std::string& b = basic["expected"].get_ref<const std::string&>();
  std::string last_user = basic["messages"].back()["content"];
  size_t at = b.rfind(last_user);
  if (at == std::string::npos) return "";
  std::string gen_prompt = b.substr(at + last_user.size());
  std::string user;
  for (auto& m : roundtrip["messages"]) {
    if (m["role"] == "user") user = m["content"];
  }
  const std::string& e = roundtrip["expected"].get_ref<const std::string&>();
  size_t start = e.find(user + gen_prompt);
  if (start == std::string::npos) return "";
  start += user.size() + gen_prompt.size();
  size_t end = std::string::npos;
  for (std::string stop : {roundtrip["eos_token"].get<std::string>(), std::string("<|eot_id|>"),
                           std::string("<|eom_id|>"), std::string("<|im_end|>"), std::string("</s>")}) {
    end = std::min(end, e.find(stop, start));
  }
  if (end == std::string::npos) return "";
  return e.substr(start, end - start);
}

TEST(OutputParserTest, RealTemplateToolCallRoundTrips) {
  PENSIEVE_REQUIRE_TEST_DATA("chat-templates/real-templates.rendered.json");
  json data = LoadRendered();
  ASSERT_TRUE(data.is_object()) << "real-templates.rendered.json missing";
  std::map<std::string, json> basic;
  for (auto& c : data["cases"]) {
    if (c["scenario"] == "basic" && c.contains("expected") && c["expected"].is_string())
      basic[c["template_id"]] = c;
  }
  int checked = 0;
  std::map<ToolFormat, int> per_format;
  for (auto& c : data["cases"]) {
    std::string id = c["template_id"];
    std::string scenario = c["scenario"];
    if (scenario.rfind("tool_call_roundtrip", 0) != 0 || !kRoundTripTemplates.count(id)) continue;
    SCOPED_TRACE(id + " / " + scenario);
    ASSERT_TRUE(c["expected"].is_string());
    ParserConfig config = DetectParserConfig(data["templates"][id]["template"], {});
    ASSERT_EQ(config.tools, kRoundTripTemplates.at(id));
    std::string turn = CutAssistantTurn(c, basic.at(id));
    ASSERT_FALSE(turn.empty()) << "could not cut the assistant turn";
    Parsed p = RunAllChunkings(config, turn);
    EXPECT_TRUE(p.well_formed) << Describe(p.events);
    EXPECT_EQ(p.text.find_first_not_of(" \n"), std::string::npos) << "markup leaked as text: " << p.text;
    // The calls the template was given.
    std::vector<Call> want;
    for (auto& m : c["messages"]) {
      if (m["role"] != "assistant" || !m.contains("tool_calls")) continue;
      for (auto& tc : m["tool_calls"]) {
        json args = tc["function"]["arguments"];
        if (args.is_string()) args = json::parse(args.get<std::string>());
        want.push_back({tc["function"]["name"], args.dump()});
      }
    }
    ASSERT_EQ(p.calls.size(), want.size()) << turn << "\n" << Describe(p.events);
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(p.calls[i].name, want[i].name);
      json got = json::parse(p.calls[i].args, nullptr, false);
      ASSERT_FALSE(got.is_discarded()) << "arguments are not JSON: " << p.calls[i].args;
      EXPECT_EQ(got.dump(), want[i].args);
    }
    ++checked;
    ++per_format[config.tools];
  }
  EXPECT_EQ(checked, 16);  // 8 templates x 2 scenarios
  EXPECT_EQ(per_format[ToolFormat::kHermes], 8);
  EXPECT_EQ(per_format[ToolFormat::kLlama3Json], 6);
  EXPECT_EQ(per_format[ToolFormat::kMistral], 2);
}

TEST(OutputParserTest, DetectsFormatsOfRealTemplates) {
  PENSIEVE_REQUIRE_TEST_DATA("chat-templates/real-templates.rendered.json");
  json data = LoadRendered();
  ASSERT_TRUE(data.is_object());
  auto detect = [&](const std::string& id) { return DetectParserConfig(data["templates"][id]["template"], {}); };
  ParserConfig qwen3 = detect("qwen3-tokenizer_config");
  EXPECT_EQ(qwen3.tools, ToolFormat::kHermes);
  EXPECT_TRUE(qwen3.reasoning);
  EXPECT_FALSE(qwen3.starts_in_reasoning);  // Qwen3 emits <think> itself
  ParserConfig r1 = detect("llama-cpp-deepseek-r1");
  EXPECT_TRUE(r1.reasoning);
  EXPECT_TRUE(r1.starts_in_reasoning);  // its generation prompt ends with <think>\n
  EXPECT_EQ(detect("google-gemma-2-2b-it").tools, ToolFormat::kNone);
  EXPECT_FALSE(detect("google-gemma-2-2b-it").reasoning);
  EXPECT_EQ(detect("microsoft-Phi-3.5-mini-instruct").tools, ToolFormat::kNone);
  // Special tokens decide when the template says nothing.
  EXPECT_EQ(DetectParserConfig("{{ messages }}", {"<|tool_call|>", "<|/tool_call|>"}).tools, ToolFormat::kPhi4Mini);
  EXPECT_EQ(DetectParserConfig("{{ messages }}", {"[TOOL_CALLS]"}).tools, ToolFormat::kMistral);

  // PromptOpensReasoning on what the templates render.
  for (auto& c : data["cases"]) {
    if (c["template_id"] == "qwen3-tokenizer_config" && c["scenario"] == "thinking_disabled") {
      EXPECT_FALSE(PromptOpensReasoning(c["expected"].get<std::string>()));
    }
    if (c["template_id"] == "llama-cpp-deepseek-r1" && c["scenario"] == "basic") {
      EXPECT_TRUE(PromptOpensReasoning(c["expected"].get<std::string>()));
    }
  }
}

TEST(OutputParserTest, HermesTextAroundCallsAndSeveralCalls) {
  std::string in =
      "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": [1, {\"y\": \"}\"}]}}\n</tool_call>\n"
      "<tool_call>\n{\"arguments\": {}, \"name\": \"b\"}\n</tool_call>";
  Parsed p = RunAllChunkings(Config(ToolFormat::kHermes), in);
  EXPECT_EQ(p.text, "Let me check.\n");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "a");
  EXPECT_EQ(p.calls[0].args, "{\"x\": [1, {\"y\": \"}\"}]}");  // raw text of the arguments object
  EXPECT_EQ(p.calls[1].name, "b");
  EXPECT_EQ(p.calls[1].args, "{}");
  EXPECT_TRUE(p.well_formed);
}

TEST(OutputParserTest, ArgumentsStreamBeforeTheCallEnds) {
  auto parser = MakeOutputParser(Config(ToolFormat::kHermes));
  std::vector<OutputEvent> out;
  parser->Feed("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"city\": \"Par", out);
  ASSERT_GE(out.size(), 2u);
  EXPECT_EQ(out[0].kind, Kind::kToolStart);
  EXPECT_EQ(out[0].text, "f");
  EXPECT_EQ(out[1].kind, Kind::kToolArgs);
  EXPECT_EQ(out[1].text, "{\"city\": \"Par");
}

TEST(OutputParserTest, Phi4MiniList) {
  // Format as Phi-4-mini-instruct's model card shows it (no rendered golden for it in shared/data).
  std::string in =
      "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}, "
      "{\"type\": \"function\", \"function\": {\"name\": \"t\", \"parameters\": {\"z\": 1}}}]<|/tool_call|>";
  Parsed p = RunAllChunkings(Config(ToolFormat::kPhi4Mini), in);
  EXPECT_EQ(p.text, "");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(p.calls[0].args), json::parse(R"({"location": "Paris"})"));
  EXPECT_EQ(p.calls[1].name, "t");
  EXPECT_EQ(json::parse(p.calls[1].args), json::parse(R"({"z": 1})"));
}

TEST(OutputParserTest, MistralNameArgsForm) {
  std::string in = "[TOOL_CALLS]get_weather[ARGS]{\"location\": \"Paris\"}[TOOL_CALLS]f2[CALL_ID]abc123[ARGS]{}";
  Parsed p = RunAllChunkings(Config(ToolFormat::kMistral), in);
  EXPECT_EQ(p.text, "");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.calls[0].args, "{\"location\": \"Paris\"}");
  EXPECT_EQ(p.calls[1].name, "f2");
  EXPECT_EQ(p.calls[1].args, "{}");
  EXPECT_TRUE(p.well_formed);
}

TEST(OutputParserTest, LlamaPythonTagAndBareJson) {
  Parsed a = RunAllChunkings(Config(ToolFormat::kLlama3Json),
                             "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"q\": \"x\"}}");
  ASSERT_EQ(a.calls.size(), 1u);
  EXPECT_EQ(a.calls[0].name, "f");
  EXPECT_EQ(a.calls[0].args, "{\"q\": \"x\"}");
  Parsed code = RunAllChunkings(Config(ToolFormat::kLlama3Json), "<|python_tag|>print(\"hi\")\n<|eom_id|>");
  ASSERT_EQ(code.calls.size(), 1u);
  EXPECT_EQ(code.calls[0].name, "python");
  EXPECT_EQ(json::parse(code.calls[0].args), json({{"code", "print(\"hi\")\n"}}));
  Parsed two = RunAllChunkings(Config(ToolFormat::kLlama3Json),
                               " {\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"k\": 2}}");
  ASSERT_EQ(two.calls.size(), 2u);
  EXPECT_EQ(two.text, "");
  EXPECT_EQ(two.calls[1].args, "{\"k\": 2}");
  // End-of-message tokens that reach the parser as text are swallowed; other text after a call is text.
  Parsed eom = RunAllChunkings(Config(ToolFormat::kLlama3Json), "{\"name\": \"f\", \"parameters\": {}}<|eom_id|>");
  ASSERT_EQ(eom.calls.size(), 1u);
  EXPECT_EQ(eom.text, "");
  Parsed after = RunAllChunkings(Config(ToolFormat::kLlama3Json), "{\"name\": \"f\", \"parameters\": {}} <b>ok");
  ASSERT_EQ(after.calls.size(), 1u);
  EXPECT_EQ(after.text, "<b>ok");  // whitespace right after a call is dropped
  // A JSON answer that is not a call stays text, byte for byte.
  for (std::string s : {"{\"name\": \"Bob\", \"age\": 3}", "  {not json at all", "{}", "Here: {\"name\": \"f\", \"parameters\": {}}"}) {
    Parsed p = RunAllChunkings(Config(ToolFormat::kLlama3Json), s);
    EXPECT_EQ(p.text, s);
    EXPECT_TRUE(p.calls.empty()) << s;
  }
}

TEST(OutputParserTest, ThinkingBlocks) {
  Parsed p = RunAllChunkings(Config(ToolFormat::kHermes, true),
                             "<think>\nI should call <tool_call> here.\n</think>\n\nThe answer.");
  EXPECT_EQ(p.thinking, "\nI should call <tool_call> here.\n");
  EXPECT_EQ(p.text, "The answer.");
  EXPECT_TRUE(p.calls.empty());
  // Generation that starts inside <think> (the prompt opened it).
  Parsed r1 = RunAllChunkings(Config(ToolFormat::kNone, true, true), "Hmm, 2+2.\n</think>\n\n4");
  EXPECT_EQ(r1.thinking, "Hmm, 2+2.\n");
  EXPECT_EQ(r1.text, "4");
  // Thinking then a call.
  Parsed both = RunAllChunkings(Config(ToolFormat::kHermes, true),
                                "<think>ok</think>\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>");
  EXPECT_EQ(both.thinking, "ok");
  EXPECT_EQ(both.text, "");
  ASSERT_EQ(both.calls.size(), 1u);
  // Unclosed thinking at the end is still thinking.
  Parsed cut = RunAllChunkings(Config(ToolFormat::kNone, true), "<think>still going </thi");
  EXPECT_EQ(cut.thinking, "still going </thi");
}

TEST(OutputParserTest, PlainTextWithNearMissMarkupIsNeverAltered) {
  const std::vector<std::string> texts = {
      "a <tool b",
      "x <think y",
      "use a lone [ bracket",
      "[TOOL_CALL] is not it",
      "[TOOL_CALLS] is! not a call",
      "<tool_call>not json</tool_call>",
      "<tool_call>\n{\"name\": 3}",
      "<|tool_call|>oops",
      "<|python_tag",
      "ends with <",
      "ends with <tool_c",
      "<thinking> about </think",
      "< think >",
      "emoji \xF0\x9F\x98\x80 and <\xE2\x9C\x93>",
      "{\"json\": true}",
      "[",
      "<",
      "",
      "tabs\tand\nnewlines  \n",
  };
  for (ToolFormat f : {ToolFormat::kNone, ToolFormat::kHermes, ToolFormat::kLlama3Json, ToolFormat::kMistral,
                       ToolFormat::kPhi4Mini}) {
    for (const std::string& t : texts) {
      // "<think" only means something when reasoning is on; with it on, "<thinking>" etc. are still text.
      Parsed p = RunAllChunkings(Config(f, /*reasoning=*/true), t);
      EXPECT_EQ(p.text, t) << "format " << static_cast<int>(f);
      EXPECT_TRUE(p.calls.empty()) << t;
      EXPECT_EQ(p.thinking, "");
    }
  }
}

TEST(OutputParserTest, CutOffCalls) {
  // Nothing reported yet: the held markup comes back as text.
  Parsed a = RunAllChunkings(Config(ToolFormat::kHermes), "Sure <tool_call>\n{\"na");
  EXPECT_EQ(a.text, "Sure <tool_call>\n{\"na");
  EXPECT_TRUE(a.calls.empty());
  // Reported already: the call is closed, arguments partial.
  Parsed b = RunAllChunkings(Config(ToolFormat::kHermes), "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1");
  ASSERT_EQ(b.calls.size(), 1u);
  EXPECT_TRUE(b.well_formed);
  EXPECT_EQ(b.calls[0].args, "{\"a\": 1");
  // Complete call without its close marker (the stop token came first).
  Parsed c = RunAllChunkings(Config(ToolFormat::kHermes), "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n");
  ASSERT_EQ(c.calls.size(), 1u);
  EXPECT_EQ(c.text, "");
}

TEST(OutputParserTest, StringArgumentsAreUnwrapped) {
  Parsed p = RunAllChunkings(Config(ToolFormat::kHermes),
                             "<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": \\\"b\\\"}\"}\n</tool_call>");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].args, "{\"a\": \"b\"}");
}


TEST(OutputParserTest, RandomMarkupSoupIsChunkingInvariantAndWellNested) {
  // Strings built from markers, their prefixes and JSON pieces: whatever the parser decides, every chunking
  // must decide the same, and tool events must nest (start, args..., end).
  const std::vector<std::string> pieces = {
      "<tool_call>", "</tool_call>", "<tool_", "<|tool_call|>", "<|/tool_call|>", "[TOOL_CALLS]", "[ARGS]",
      "[CALL_ID]", "<|python_tag|>", "<|eom_id|>", "<think>", "</think>", "</thi", "{", "}", "[", "]", ",",
      ":", " ", "\n", "\"", "\\", "\"name\"", "\"arguments\"", "\"parameters\"", "\"f\"", "1", "x", "get_w",
      "; ", "\xC3\xA9"};
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 1500; ++iter) {
    std::string in;
    int n = 1 + rng() % 24;
    for (int i = 0; i < n; ++i) in += pieces[rng() % pieces.size()];
    ParserConfig config = Config(static_cast<ToolFormat>(iter % 5), iter % 3 != 0, iter % 7 == 0);
    Parsed p = RunAllChunkings(config, in);
    EXPECT_TRUE(p.well_formed) << in << "\n" << Describe(p.events);
  }
}

}  // namespace
}  // namespace pensieve::chat

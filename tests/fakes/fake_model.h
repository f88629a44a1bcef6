#pragma once
// Test fakes standing in for the chat template, the output parser and the model's behaviour, until the real
// ones land: a fixed ChatML-like template, a parser for <think>/<tool_call>{json}</tool_call> markup, and a
// scripter that answers by keywords in the prompt (so HTTP tests can ask for tool calls, thinking, UTF-8...).
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "api/pipeline.h"
#include "chat/output_parser.h"
#include "fakes/fake_engine.h"
#include "fakes/fake_tokenizer.h"

namespace pensieve::test {

// <|role|>\ncontent\n per message; tools as one system line; the generation prompt is <|assistant|>\n,
// followed by <think>\n when thinking is on.
inline std::string FakeRender(const chat::RenderInput& in) {
  std::string out;
  if (in.tools.is_array() && !in.tools.empty()) out += "<|system|>\nTOOLS " + in.tools.dump() + "\n";
  for (const auto& m : in.messages) {
    std::string role = m["role"].get<std::string>();
    out += "<|" + role + "|>\n" + m["content"].get<std::string>();
    if (m.contains("tool_calls")) out += " CALLS " + m["tool_calls"].dump();
    out += "\n";
  }
  if (in.add_generation_prompt) {
    out += "<|assistant|>\n";
    if (in.extra.contains("enable_thinking") && in.extra["enable_thinking"].get<bool>()) out += "<think>\n";
  }
  return out;
}

// Parses <think>...</think> and <tool_call>{"name":..,"arguments":{..}}</tool_call>. Holds back text that
// may be the start of a marker. Arguments are reported in two fragments to exercise concatenation.
class FakeParser : public chat::OutputParser {
 public:
  explicit FakeParser(bool starts_in_reasoning) : thinking_(starts_in_reasoning) {}
  void Feed(std::string_view text, std::vector<chat::OutputEvent>& out) override {
    buf_ += text;
    Drain(out, false);
  }
  void Finish(std::vector<chat::OutputEvent>& out) override {
    Drain(out, true);
    if (!buf_.empty()) out.push_back({in_tool_ ? chat::OutputEvent::Kind::kText : Kind(), buf_});
    buf_.clear();
  }

 private:
  chat::OutputEvent::Kind Kind() const { return thinking_ ? chat::OutputEvent::Kind::kThinking : chat::OutputEvent::Kind::kText; }
  void Drain(std::vector<chat::OutputEvent>& out, bool final) {
    for (;;) {
      if (in_tool_) {
        size_t end = buf_.find("</tool_call>");
        if (end == std::string::npos) return;
        std::string body = buf_.substr(0, end);
        buf_.erase(0, end + 12);
        in_tool_ = false;
        nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("name")) {
          out.push_back({chat::OutputEvent::Kind::kText, "<tool_call>" + body + "</tool_call>"});
          continue;
        }
        std::string args = j.value("arguments", nlohmann::json::object()).dump();
        out.push_back({chat::OutputEvent::Kind::kToolStart, j["name"].get<std::string>()});
        out.push_back({chat::OutputEvent::Kind::kToolArgs, args.substr(0, args.size() / 2)});
        out.push_back({chat::OutputEvent::Kind::kToolArgs, args.substr(args.size() / 2)});
        out.push_back({chat::OutputEvent::Kind::kToolEnd, ""});
        continue;
      }
      const std::string marker = thinking_ ? "</think>" : "<";
      size_t pos = thinking_ ? buf_.find("</think>") : std::string::npos;
      if (!thinking_) {
        size_t t = buf_.find("<tool_call>"), k = buf_.find("<think>");
        pos = std::min(t, k);
      }
      if (pos == std::string::npos) {
        // Emit all but a possible marker prefix at the end.
        size_t hold = 0;
        for (const std::string m : {"<tool_call>", "<think>", "</think>"}) {
          for (size_t len = std::min(m.size() - 1, buf_.size()); len > hold; --len) {
            if (buf_.compare(buf_.size() - len, len, m, 0, len) == 0) { hold = len; break; }
          }
        }
        if (final) hold = 0;
        if (buf_.size() > hold) out.push_back({Kind(), buf_.substr(0, buf_.size() - hold)});
        buf_.erase(0, buf_.size() - hold);
        return;
      }
      if (pos > 0) out.push_back({Kind(), buf_.substr(0, pos)});
      if (thinking_) {
        buf_.erase(0, pos + 8);
        thinking_ = false;
        while (!buf_.empty() && buf_[0] == '\n') buf_.erase(0, 1);
      } else if (buf_.compare(pos, 7, "<think>") == 0) {
        buf_.erase(0, pos + 7);
        thinking_ = true;
      } else {
        buf_.erase(0, pos + 11);
        in_tool_ = true;
      }
    }
  }
  std::string buf_;
  bool thinking_ = false;
  bool in_tool_ = false;
};

inline std::vector<int32_t> Tok(const std::string& s) { return FakeTokenizer().Encode(s); }

// The fake model's behaviour, by keywords in the (last part of the) prompt.
inline FakeScript ScriptFor(const engine::GenerateRequest& req) {
  FakeTokenizer tok;
  std::string prompt = tok.Decode(req.prompt);
  // Only look at the last user turn and what follows it, so history does not retrigger keywords.
  size_t last_user = prompt.rfind("<|user|>");
  size_t last_tool = prompt.rfind("<|tool|>");
  size_t from = last_user == std::string::npos ? 0 : last_user;
  if (last_tool != std::string::npos && last_tool > from) from = last_tool;
  std::string turn = prompt.substr(from);
  FakeScript s;
  auto say = [&](const std::string& text) {
    s.tokens = tok.Encode(text);
    s.tokens.push_back(FakeTokenizer::kEos);
  };
  bool tools = prompt.find("TOOLS ") != std::string::npos;
  // A tool result since the previous assistant turn (possibly followed by more user text) is answered.
  size_t gen = prompt.rfind("<|assistant|>");
  size_t prev = gen == std::string::npos || gen == 0 ? std::string::npos : prompt.rfind("<|assistant|>", gen - 1);
  size_t tool = prev == std::string::npos ? std::string::npos : prompt.find("<|tool|>\n", prev);
  if (tool != std::string::npos && tool < gen) {
    size_t b = tool + 9;
    say("The tool said: " + prompt.substr(b, prompt.find('\n', b) - b));
  } else if (turn.find("count 1 to 10") != std::string::npos) {
    say("1, 2, 3, 4, 5, 6, 7, 8, 9, 10");
  } else if (tools && turn.find("weather") != std::string::npos) {
    say("Let me check. <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}</tool_call>"
        "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\", \"unit\": \"c\"}}</tool_call>");
  } else if (turn.find("launch the rocket") != std::string::npos) {  // a call of a tool nobody declared, tools or not
    say("Sure. <tool_call>{\"name\": \"launch_rocket\", \"arguments\": {\"when\": \"now\"}}</tool_call>");
  } else if (tools && turn.find("sloppy call") != std::string::npos) {  // arguments that are not an object
    say("<tool_call>{\"name\": \"get_weather\", \"arguments\": [\"Paris\"]}</tool_call>");
  } else if (turn.find("emoji") != std::string::npos) {
    say("héllo 👋 世界 ✓");
  } else if (turn.find("long story") != std::string::npos) {
    std::string text;
    for (int i = 0; i < 200; ++i) text += "word" + std::to_string(i) + " ";
    say(text);
    s.token_ms = 2;
  } else if (turn.find("slow prefill") != std::string::npos) {
    s.prefill_ms = 1200;
    say("Done after a slow prefill.");
  } else if (turn.find("fail midway") != std::string::npos) {
    s.tokens = tok.Encode("partial answer");
    s.fail_after_tokens = true;
  } else if (prompt.find("<think>\n", prompt.size() - 8) != std::string::npos) {
    say("I should greet.</think>Hello there!");
  } else if (turn.find("That is all.") != std::string::npos) {  // a prefilled answer the model ends at once
    say("");
  } else if (turn.find("The capital of France is") != std::string::npos) {
    say(" Paris.");
  } else {
    say("Hi! I am a fake model.");
  }
  return s;
}

struct FakeWorld {
  FakeTokenizer tokenizer;
  FakeEngine engine;
  api::ChatPipeline pipeline;
  explicit FakeWorld(int ctx = 4096, int slots = 4, int max_queue = 64)
      : engine(ScriptFor, ctx, slots, max_queue),
        pipeline(engine, tokenizer, FakeRender,
                 [](const chat::ParserConfig& c) { return std::make_unique<FakeParser>(c.starts_in_reasoning); },
                 api::PipelineConfig{{FakeTokenizer::kEos}, chat::ParserConfig{chat::ToolFormat::kHermes, true, false}, false, {}}) {}
};

}  // namespace pensieve::test

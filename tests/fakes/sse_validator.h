#pragma once
// Test helper: splits an SSE body into frames and checks the Anthropic Messages stream grammar (§2.2 of
// anthropic-api.md): message_start, then content blocks with gapless indices 0..k each started once and
// stopped once (closed before the next starts), then exactly one message_delta, then message_stop last;
// ping anywhere; every `data:` is one-line JSON whose type equals the event name; no [DONE].
// Returns "" when valid, else what is wrong.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pensieve::test {

struct SseFrame {
  std::string event;
  std::string data;
};

inline std::vector<SseFrame> ParseSse(const std::string& body) {
  std::vector<SseFrame> frames;
  SseFrame cur;
  bool any = false;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t e = body.find('\n', pos);
    if (e == std::string::npos) e = body.size();
    std::string line = body.substr(pos, e - pos);
    pos = e + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      if (any) frames.push_back(cur);
      cur = {};
      any = false;
      continue;
    }
    if (line[0] == ':') continue;
    if (line.rfind("event: ", 0) == 0) { cur.event = line.substr(7); any = true; }
    else if (line.rfind("data: ", 0) == 0) { cur.data += (cur.data.empty() ? "" : "\n") + line.substr(6); any = true; }
  }
  if (any) frames.push_back(cur);
  return frames;
}

inline std::string ValidateAnthropicSse(const std::string& body, bool allow_error = false) {
  auto frames = ParseSse(body);
  if (frames.empty()) return "no frames";
  enum { kBeforeStart, kInMessage, kAfterDelta, kStopped } state = kBeforeStart;
  int next_index = 0;
  int open = -1;
  int deltas = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    const auto& f = frames[i];
    std::string at = "frame " + std::to_string(i) + " (" + f.event + "): ";
    if (f.data == "[DONE]") return at + "[DONE] on the Anthropic route";
    if (f.data.find('\n') != std::string::npos) return at + "multi-line data";
    auto j = nlohmann::json::parse(f.data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return at + "data is not a JSON object";
    if (!j.contains("type") || j["type"] != f.event) return at + "data.type != event name";
    if (state == kStopped) return at + "event after message_stop";
    const std::string& ev = f.event;
    if (ev == "ping") continue;
    if (ev == "error") {
      if (!allow_error) return at + "unexpected error event";
      if (!j.contains("error") || !j["error"].contains("type") || !j["error"].contains("message")) return at + "bad error payload";
      if (i + 1 != frames.size()) return at + "events after error";
      return "";
    }
    if (ev == "message_start") {
      if (state != kBeforeStart) return at + "second message_start";
      const auto& u = j["message"]["usage"];
      if (!u.contains("input_tokens") || !u["input_tokens"].is_number_integer() || !u.contains("output_tokens"))
        return at + "message_start without usage.input_tokens/output_tokens";
      if (!j["message"]["content"].is_array() || !j["message"]["content"].empty()) return at + "message_start content not []";
      state = kInMessage;
    } else if (ev == "content_block_start") {
      if (state != kInMessage) return at + "block start outside message";
      if (open >= 0) return at + "block started while block " + std::to_string(open) + " open";
      if (j["index"] != next_index) return at + "index gap (expected " + std::to_string(next_index) + ")";
      const auto& b = j["content_block"];
      std::string t = b.value("type", "");
      if (t == "text" && !(b.contains("text") && b["text"] == "")) return at + "text block start must have text \"\"";
      if (t == "tool_use" && !(b.contains("input") && b["input"].is_object() && b["input"].empty() && b.contains("id") && b.contains("name")))
        return at + "tool_use start must have id, name, input {}";
      if (t == "thinking" && !(b.contains("thinking") && b.contains("signature"))) return at + "thinking start fields";
      open = next_index++;
    } else if (ev == "content_block_delta") {
      if (open < 0 || j["index"] != open) return at + "delta for a block that is not open";
    } else if (ev == "content_block_stop") {
      if (open < 0 || j["index"] != open) return at + "stop for a block that is not open";
      open = -1;
    } else if (ev == "message_delta") {
      if (state != kInMessage) return at + "message_delta out of place";
      if (open >= 0) return at + "message_delta while a block is open";
      if (!j.contains("usage") || !j["usage"].contains("output_tokens")) return at + "message_delta without usage.output_tokens";
      if (!j["delta"].contains("stop_reason")) return at + "message_delta without stop_reason";
      ++deltas;
      state = kAfterDelta;
    } else if (ev == "message_stop") {
      if (state != kAfterDelta) return at + "message_stop before message_delta";
      state = kStopped;
    } else {
      return at + "unknown event";
    }
  }
  if (state != kStopped) return "stream did not end with message_stop";
  if (deltas != 1) return "expected exactly one message_delta";
  return "";
}

}  // namespace pensieve::test

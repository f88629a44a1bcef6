// libFuzzer target: the output parsers on arbitrary model text, every format, fed whole and byte by byte.
// Checks the parser's own invariants: no crash, identical merged events for both chunkings, tool events
// well nested (start, args..., end).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "chat/output_parser.h"

using pensieve::chat::OutputEvent;

namespace {

std::vector<OutputEvent> Merge(const std::vector<OutputEvent>& events) {
  std::vector<OutputEvent> out;
  for (const auto& e : events) {
    bool text_like = e.kind != OutputEvent::Kind::kToolStart && e.kind != OutputEvent::Kind::kToolEnd;
    if (text_like && !out.empty() && out.back().kind == e.kind) {
      out.back().text += e.text;
    } else if (!(text_like && e.text.empty())) {
      out.push_back(e);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  pensieve::chat::ParserConfig config;
  config.tools = static_cast<pensieve::chat::ToolFormat>(data[0] % 5);
  config.reasoning = data[0] & 8;
  config.starts_in_reasoning = data[0] & 16;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  std::vector<OutputEvent> whole, bytes;
  auto a = pensieve::chat::MakeOutputParser(config);
  a->Feed(text, whole);
  a->Finish(whole);
  auto b = pensieve::chat::MakeOutputParser(config);
  for (char c : text) b->Feed(std::string_view(&c, 1), bytes);
  b->Finish(bytes);

  auto m1 = Merge(whole), m2 = Merge(bytes);
  if (m1.size() != m2.size()) std::abort();
  bool open = false;
  for (size_t i = 0; i < m1.size(); ++i) {
    if (m1[i].kind != m2[i].kind || m1[i].text != m2[i].text) std::abort();
    switch (m1[i].kind) {
      case OutputEvent::Kind::kToolStart: if (open) std::abort(); open = true; break;
      case OutputEvent::Kind::kToolArgs: if (!open) std::abort(); break;
      case OutputEvent::Kind::kToolEnd: if (!open) std::abort(); open = false; break;
      default: if (open) std::abort(); break;
    }
  }
  if (open) std::abort();
  return 0;
}

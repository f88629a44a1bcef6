#include "chat/tool_call_syntax.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace pensieve::chat {

ToolCallSyntax ForcedToolCallSyntax(ToolFormat format, const std::vector<std::string>& names) {
  std::string before, after, closer;
  switch (format) {
    case ToolFormat::kHermes: before = "<tool_call>\n{\"name\": "; after = ", \"arguments\":"; closer = "}\n</tool_call>"; break;
    case ToolFormat::kLlama3Json: before = "{\"name\": "; after = ", \"parameters\":"; closer = "}"; break;
    case ToolFormat::kMistral: before = "[TOOL_CALLS][{\"name\": "; after = ", \"arguments\":"; closer = "}]"; break;
    case ToolFormat::kPhi4Mini:
      before = "<|tool_call|>[{\"name\": ";
      after = ", \"arguments\":";
      closer = "}]<|/tool_call|>";
      break;
    case ToolFormat::kNone: throw Error("ForcedToolCallSyntax: the model has no tool-call format");
  }
  ToolCallSyntax s;
  for (const auto& name : names) {
    std::string quoted = nlohmann::json(name).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    s.openers.push_back(before + quoted + after);
  }
  s.closer = closer;
  return s;
}

}  // namespace pensieve::chat

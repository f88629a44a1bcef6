#pragma once
// How a tool call is written in each model's native syntax (the formats output_parser.h reads), split around
// the arguments object, so constrained decoding can force a call: opener (markup + name) + JSON object +
// closer. Parsing the concatenation with the format's OutputParser yields one call with that name and object.
//   Hermes:    <tool_call>\n{"name": "NAME", "arguments": OBJ}\n</tool_call>
//   Llama 3.x: {"name": "NAME", "parameters": OBJ}
//   Mistral:   [TOOL_CALLS][{"name": "NAME", "arguments": OBJ}]
//   Phi-4-mini: <|tool_call|>[{"name": "NAME", "arguments": OBJ}]<|/tool_call|>
// The opener ends right before the object (no trailing space: the model picks its own " {" token).
#include <string>
#include <vector>

#include "chat/output_parser.h"

namespace pensieve::chat {

struct ToolCallSyntax {
  std::vector<std::string> openers;  // one per name, in the names' order
  std::string closer;
};

// format must not be kNone. Names are written JSON-escaped.
ToolCallSyntax ForcedToolCallSyntax(ToolFormat format, const std::vector<std::string>& names);

}  // namespace pensieve::chat

#pragma once
// Incremental parsers for what a model writes: plain text, <think> reasoning, and tool calls in the model's
// native syntax (Hermes/Qwen <tool_call>{json}</tool_call>, Llama-3.1 JSON / <|python_tag|>,
// Mistral [TOOL_CALLS], Phi-4-mini <|tool_call|>).
//
// Contract: Feed() takes detokenized text in arbitrary pieces (special tokens included as their text) and
// appends events; markup is never emitted as text; text that might still turn out to be markup is held back
// until it is decided. Finish() flushes what is held (an unterminated tool call is reported as text).
// Concatenating kText events gives the model's text without the markup; kToolArgs pieces of one call
// concatenate to its arguments as JSON object text.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pensieve::chat {

struct OutputEvent {
  enum class Kind { kText, kThinking, kToolStart, kToolArgs, kToolEnd };
  Kind kind = Kind::kText;
  std::string text;  // kText / kThinking: the text; kToolStart: the tool name; kToolArgs: a JSON fragment
};

enum class ToolFormat { kNone, kHermes, kLlama3Json, kMistral, kPhi4Mini };

struct ParserConfig {
  ToolFormat tools = ToolFormat::kNone;
  bool reasoning = false;         // model emits <think>...</think>
  bool starts_in_reasoning = false;  // the prompt already opened <think> (generation starts inside it)
};

class OutputParser {
 public:
  virtual ~OutputParser() = default;
  virtual void Feed(std::string_view text, std::vector<OutputEvent>& out) = 0;
  virtual void Finish(std::vector<OutputEvent>& out) = 0;
};

std::unique_ptr<OutputParser> MakeOutputParser(const ParserConfig& config);

// Derives the formats from a chat template's source and the vocabulary's special tokens.
ParserConfig DetectParserConfig(const std::string& template_source, const std::vector<std::string>& special_tokens);

}  // namespace pensieve::chat

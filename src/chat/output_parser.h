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
//
// Details of the implementation (output_parser.cpp):
//  - The input is processed one byte at a time and adjacent kText / kThinking / kToolArgs events are merged
//    into the last event of `out`, so any chunking of the same text gives the same events once merged.
//  - A call is reported (kToolStart) as soon as its name is known and its arguments begin; object-valued
//    arguments then stream as raw JSON text. Arguments given as a JSON string holding JSON (some templates
//    render them so) are reported as the string's content. A call without arguments reports "{}".
//  - "Unterminated" means nothing was reported yet (e.g. "<tool_call>{\"na" at the end): that is text. A call
//    cut off after its kToolStart (max_tokens) is closed with kToolEnd; its arguments may be incomplete JSON.
//    A missing close marker after a complete call is fine (the stop token often comes first).
//  - Whitespace right after closing markup (</think>, </tool_call>, ...) is dropped; whitespace before markup
//    is kept as text, except before Llama's bare JSON call.
//  - Llama 3.x: a bare JSON object {"name": ..., "parameters"|"arguments": ...} is a call only as the whole
//    output's start (set tools = kNone when the request offered no tools, so a JSON answer stays text);
//    <|python_tag|> followed by code is reported as a call named "python" with arguments {"code": "..."}.
//  - Tool markup inside <think> is thinking text, not a call.
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
  bool starts_in_reasoning = false;  // the prompt already opened <think> (generation starts inside it); without
                                     // reasoning, later <think> text is not markup
};

class OutputParser {
 public:
  virtual ~OutputParser() = default;
  virtual void Feed(std::string_view text, std::vector<OutputEvent>& out) = 0;
  virtual void Finish(std::vector<OutputEvent>& out) = 0;
};

std::unique_ptr<OutputParser> MakeOutputParser(const ParserConfig& config);

// Derives the formats from a chat template's source and the vocabulary's special tokens.
// Tools: Hermes if the template writes <tool_call>, Mistral for [TOOL_CALLS], Phi-4-mini for <|tool_call|> or
// <|tool|>, Llama 3.x for <|python_tag|> or its "{"name": function name, "parameters"" instruction (template
// first, then special tokens). reasoning: <think> appears in the template or the special tokens.
// starts_in_reasoning: the template's generation prompt opens <think> without closing it (DeepSeek-R1).
ParserConfig DetectParserConfig(const std::string& template_source, const std::vector<std::string>& special_tokens);

// True when the rendered prompt leaves a <think> block open (its last <think> comes after its last </think>):
// generation then starts inside reasoning. More reliable than the template heuristic; use it per request.
bool PromptOpensReasoning(std::string_view prompt);

}  // namespace pensieve::chat

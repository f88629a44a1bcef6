#pragma once
// The chat pipeline shared by both APIs: ChatRequest -> rendered prompt -> tokens -> engine -> tokens ->
// text (incremental detokenization) -> stop sequences (text level, never emitted) -> output parser (thinking,
// tool calls) -> ChatEvents.
//
// Tool calls are reported whole: a call's start, arguments and end come together once the parser has closed
// it, because only then can it be checked. A call of a tool the request did not declare (or any call when
// tool_choice is none), or one whose arguments are not a complete JSON object (a broken object, or cut off by
// max_tokens), is returned as text in the model's call syntax: never lost, never invalid JSON. Calls beyond
// the parallel limit are dropped (the turn ends after the first).
//
// Threading: Start() submits to the engine; the engine's sink only pushes raw tokens into the generation's
// queue (never blocks). Detokenizing, stop matching and parsing run on the caller's thread inside Next().
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/chat_request.h"
#include "chat/chat_template.h"
#include "chat/output_parser.h"
#include "engine/engine.h"
#include "engine/token_bytes.h"
#include "tokenizer/tokenizer.h"

namespace pensieve::api {

using TemplateRenderer = std::function<std::string(const chat::RenderInput&)>;
using ParserFactory = std::function<std::unique_ptr<chat::OutputParser>(const chat::ParserConfig&)>;

struct PipelineConfig {
  std::vector<int32_t> stop_token_ids;  // EOS and end-of-turn tokens
  chat::ParserConfig parser;            // what the model's output looks like
  bool vision = false;
  SamplingDefaults sampling_defaults;   // for sampling fields a request leaves out
  int max_prompt_tokens = 0;            // longest prompt accepted (0: the context); longer ones are a 400
};

struct PreparedPrompt {
  std::string text;                 // the rendered prompt
  std::vector<int32_t> tokens;
  int max_tokens = 0;               // after clamping to the context
  bool starts_in_reasoning = false; // the prompt ends inside an opened <think>
  bool prefilled = false;           // the prompt ends with the client's assistant prefill
};

class Generation;

class ChatPipeline {
 public:
  ChatPipeline(engine::Engine& engine, const Tokenizer& tokenizer, TemplateRenderer renderer, ParserFactory parsers,
               PipelineConfig config);

  // Renders and tokenizes; throws RequestError 400 "prompt is too long: N tokens > M maximum" when the prompt
  // does not fit the context (or config.max_prompt_tokens), and clamps max_tokens to what the context has left.
  PreparedPrompt Prepare(const ChatRequest& request) const;
  // The number of prompt tokens the same request would be billed (count_tokens).
  int CountTokens(const ChatRequest& request) const { return static_cast<int>(Prepare(request).tokens.size()); }

  // Submits; throws engine::QueueFull when the engine's queue is full, engine::BadRequest when the engine
  // refuses the request itself (the server answers 400).
  //
  // Constrained decoding (engine/json_constraint.h) makes two request kinds exact rather than instructed:
  //  - a forced tool (tool_choice any / named, with tools): the output is one call in the model's own tool
  //    syntax (chat/tool_call_syntax.h; Hermes when the template has none), the name one of the allowed tools
  //    (the model picks), the arguments a JSON object; it then ends (stop reason tool_use). The tokens flow
  //    through the same detokenizer and output parser as free text, so events are those of a free call.
  //  - json_object: the text is one JSON object starting with '{' and ending at its '}' (reason end_turn);
  //    tool and <think> markup are not parsed out of it.
  // A prompt that opened <think> gets "</think>\n\n" forced first. With an assistant prefill neither applies
  // (the prefill may already hold part of the answer): the instruction in the system turn remains.
  std::unique_ptr<Generation> Start(const ChatRequest& request, PreparedPrompt prompt);

  engine::Engine& engine() { return engine_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  int context_length() const { return engine_.context_length(); }
  bool vision() const { return config_.vision; }
  bool reasoning_model() const { return config_.parser.reasoning; }

 private:
  friend class Generation;
  chat::RenderInput BuildRenderInput(const ChatRequest& request, std::string* prefill) const;
  // The constraint for a request (null when free), and the parser config its output is read with.
  std::shared_ptr<engine::TokenConstraint> Constrain(const ChatRequest& request, const PreparedPrompt& prompt,
                                                     chat::ParserConfig* parser) const;
  std::shared_ptr<const engine::TokenBytes> TokenTable() const;  // built on first use

  engine::Engine& engine_;
  const Tokenizer& tokenizer_;
  TemplateRenderer renderer_;
  ParserFactory parsers_;
  PipelineConfig config_;
  mutable std::mutex table_mu_;
  mutable std::shared_ptr<const engine::TokenBytes> table_;
};

// One running generation. Not thread-safe except Cancel(); destroying it cancels the engine sequence.
class Generation {
 public:
  ~Generation();
  // Waits up to `timeout` for the next event. Returns false on timeout (and after the final event).
  bool Next(ChatEvent* event, std::chrono::milliseconds timeout);
  void Cancel();
  int prompt_tokens() const { return prompt_tokens_; }
  bool done() const { return done_; }

 private:
  friend class ChatPipeline;
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<engine::TokenOut> tokens;
    int prefill_done = -1, prefill_total = 0;
    bool finished = false;
    engine::Finish finish;
  };
  Generation(ChatPipeline& pipeline, const ChatRequest& request, const PreparedPrompt& prompt,
             const chat::ParserConfig& parser);
  void HandleToken(const engine::TokenOut& token);
  void HandleText(const std::string& text, bool final);
  void HandleFinish(const engine::Finish& finish);
  void FinishToolCall();
  void StopEarly();

  ChatPipeline& pipeline_;
  engine::Engine& engine_;
  uint64_t id_ = 0;
  bool submitted_ = false;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  std::deque<ChatEvent> ready_;
  int prompt_tokens_ = 0;
  int output_tokens_ = 0;
  bool stopped_ = false;         // we ended it (stop sequence, single tool call): ignore further tokens
  StopReason stopped_reason_ = StopReason::kEndTurn;
  bool done_ = false;
  int tool_calls_ = 0;
  bool in_tool_ = false;         // between the parser's kToolStart and kToolEnd
  std::string tool_name_;        // the call being read, reported by FinishToolCall()
  std::string tool_args_;
  std::vector<std::string> tool_names_;  // tools the request declared and lets the model call
  chat::ToolFormat tool_format_ = chat::ToolFormat::kNone;
  bool keep_thinking_ = true;
  bool raw_ = false;
  int max_tool_calls_ = 1 << 30;
  bool logprobs_ = false;
  std::vector<TokenLogprob> pending_logprobs_;
  std::unique_ptr<class Detokenizer> detok_;
  std::unique_ptr<class StopMatcher> stops_;
  std::unique_ptr<chat::OutputParser> parser_;
};

}  // namespace pensieve::api

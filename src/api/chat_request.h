#pragma once
// The one internal chat request and the one event stream that both HTTP APIs (Anthropic, OpenAI) translate
// into and out of. Adapters validate and normalise; the pipeline (pipeline.h) renders, tokenizes, runs the
// engine and turns tokens back into these events. A feature or fix of the generation path lands once, here.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "util/error.h"

namespace pensieve::api {

using Json = nlohmann::ordered_json;

// A request the client got wrong (or one we cannot serve): carries the HTTP status and the Anthropic error
// type ("invalid_request_error", "not_found_error", ...); the OpenAI adapter maps the type onto its own.
class RequestError : public Error {
 public:
  RequestError(int status, std::string type, const std::string& message)
      : Error(message), status_(status), type_(std::move(type)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string type_;
};

inline RequestError InvalidRequest(const std::string& message) {
  return RequestError(400, "invalid_request_error", message);
}

struct ToolCall {
  std::string id;
  std::string name;
  Json arguments = Json::object();  // always a JSON object
};

// One turn in transformers' chat shape. Tool results are their own kTool messages (placed before any text of
// the same user turn, which is what tool-capable templates expect right after an assistant tool call).
struct ChatMessage {
  enum class Role { kSystem, kUser, kAssistant, kTool };
  Role role = Role::kUser;
  std::string content;
  std::string reasoning;             // assistant: earlier thinking text (templates may drop or keep it)
  std::vector<ToolCall> tool_calls;  // assistant
  std::string tool_call_id;          // tool
  std::string tool_name;             // tool: name of the called tool when known
  bool is_error = false;             // tool

  static ChatMessage Text(Role role, std::string content) {
    ChatMessage m;
    m.role = role;
    m.content = std::move(content);
    return m;
  }
};

const char* RoleName(ChatMessage::Role role);

struct ToolDef {
  std::string name;
  std::string description;
  Json parameters = Json::object();  // JSON Schema of the arguments
};

struct ToolChoice {
  enum class Mode { kAuto, kAny, kNone, kNamed };
  Mode mode = Mode::kAuto;
  std::string name;                 // kNamed
  bool disable_parallel = false;    // at most one call
};

// The model's recommended sampling (generation_config.json), used for fields a request leaves out, as vLLM
// does: a local model's own defaults beat the API's generic temperature 1.
struct SamplingDefaults {
  std::optional<float> temperature;  // 0 when the model asks for greedy decoding (do_sample false)
  std::optional<float> top_p;
  std::optional<int> top_k;
  std::optional<float> min_p;
};

struct ChatRequest {
  std::string model;                 // as the client named it (echoed back)
  std::vector<ChatMessage> messages; // system prompt first (if any), then the conversation
  std::vector<ToolDef> tools;
  ToolChoice tool_choice;
  engine::SamplingParams sampling;
  // Which of these the client set; the others take the model's defaults (SamplingDefaults) where it has them.
  struct {
    bool temperature = false, top_p = false, top_k = false, min_p = false;
  } sampling_set;
  std::vector<std::string> stop;     // text-level stop sequences, never emitted
  int max_tokens = 256;
  std::optional<bool> thinking;      // nullopt: the template's default
  bool stream = false;
  bool json_object = false;          // OpenAI response_format json_object: the reply must be one JSON object
  bool logprobs = false;             // OpenAI: report per-token logprobs
  // Raw completion (OpenAI /v1/completions): the prompt is used as-is, no template, no output parsing.
  std::optional<std::string> raw_prompt;
  // Last message is an assistant turn: generation continues it (derived by the pipeline).
};

enum class StopReason { kEndTurn, kMaxTokens, kStopSequence, kToolUse, kCancelled, kError };

struct Usage {
  int input_tokens = 0;   // prompt tokens not served from the prefix cache
  int cached_tokens = 0;  // prompt tokens whose KV was reused
  int output_tokens = 0;
  int prompt_tokens() const { return input_tokens + cached_tokens; }
};

struct TokenLogprob {
  std::string token;
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;
};

// The event stream of one generation, in order:
//   kPrefill* then (kText | kThinking | kToolStart kToolArgs* kToolEnd)* then exactly one kFinish or kError.
struct ChatEvent {
  enum class Kind { kPrefill, kText, kThinking, kToolStart, kToolArgs, kToolEnd, kFinish, kError };
  Kind kind = Kind::kText;
  std::string text;        // kText/kThinking: text; kToolStart: tool name; kToolArgs: JSON fragment; kError: message
  std::string tool_id;     // kToolStart/kToolArgs/kToolEnd
  int tool_index = 0;      // 0-based index of the call within this reply
  StopReason stop_reason = StopReason::kEndTurn;  // kFinish
  std::string stop_sequence;                      // kFinish with kStopSequence
  Usage usage;                                    // kFinish; kPrefill: input_tokens = prefilled so far,
                                                  // output_tokens = prompt size
  std::vector<TokenLogprob> logprobs;             // kText when requested: the tokens behind this text
};

}  // namespace pensieve::api

#pragma once
// The OpenAI adapter: /v1/chat/completions and /v1/completions request JSON -> ChatRequest, ChatEvents ->
// the completion object or `data:` chunks ending in `data: [DONE]`, and OpenAI's error envelope.
#include <string>

#include "api/chat_request.h"

namespace pensieve::api {

struct OpenAIOptions {
  bool include_usage = false;  // stream_options.include_usage (set by the parser)
};

// Throws RequestError naming the field. `default_max_tokens` applies when the request gives none.
ChatRequest ParseOpenAIChatRequest(const Json& body, int default_max_tokens, OpenAIOptions* options);
ChatRequest ParseOpenAICompletionRequest(const Json& body, OpenAIOptions* options);

const char* OpenAIFinishReason(StopReason reason);

// {"error":{"message","type","param","code"}}; `type` is the Anthropic error type, mapped.
std::string OpenAIErrorBody(const std::string& type, const std::string& message);

// Non-streaming: collects events into a chat.completion (or text_completion) object.
class OpenAIResponseBuilder {
 public:
  OpenAIResponseBuilder(std::string id, std::string model, bool completion_api, bool logprobs);
  void Add(const ChatEvent& event);
  Json Build() const;

 private:
  std::string id_, model_;
  bool completion_;
  bool logprobs_;
  long created_;
  std::string text_, reasoning_;
  Json tool_calls_ = Json::array();
  Json logprob_content_ = Json::array();
  ChatEvent finish_;
};

// Streaming: each call returns zero or more "data: {...}\n\n" frames.
class OpenAIStreamEncoder {
 public:
  OpenAIStreamEncoder(std::string id, std::string model, bool completion_api, bool include_usage, bool logprobs);
  std::string Start();
  std::string Event(const ChatEvent& event);
  // Sent when nothing happened for a while: an SSE comment line, which keeps proxies and sockets alive and
  // which OpenAI clients ignore (OpenAI's chunk grammar has no empty delta to send instead).
  std::string KeepAlive() const { return ": keep-alive\n\n"; }
  std::string Error(const std::string& type, const std::string& message);
  bool finished() const { return finished_; }

 private:
  Json Chunk(Json delta_or_text, const Json& finish_reason, const Json& logprobs = Json()) const;
  std::string Frame(const Json& j) const;
  std::string id_, model_;
  bool completion_;
  bool include_usage_;
  bool logprobs_;
  long created_;
  bool finished_ = false;
};

Json LogprobsJson(const std::vector<TokenLogprob>& lps);

}  // namespace pensieve::api

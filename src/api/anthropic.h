#pragma once
// The Anthropic Messages API adapter (contract: shared/docs/anthropic-api.md): request JSON -> ChatRequest,
// ChatEvents -> the non-streaming message object or the SSE event sequence, and the error envelope.
// Lenient by design: unknown fields, beta fields and typed server tools are accepted and ignored.
#include <string>
#include <vector>

#include "api/chat_request.h"

namespace pensieve::api {

struct AnthropicParseOptions {
  bool count_tokens = false;     // /v1/messages/count_tokens: no max_tokens
  bool vision = false;           // the model accepts images (none of ours does yet)
};

// Validates and converts; throws RequestError naming the field ("messages.1.content.0: ...").
// `notes` collects what was accepted but ignored (typed server tools, ...) for the request log.
ChatRequest ParseAnthropicRequest(const Json& body, const AnthropicParseOptions& options,
                                  std::vector<std::string>* notes = nullptr);

const char* AnthropicStopReason(StopReason reason);

// {"type":"error","error":{"type","message"},"request_id"}
std::string AnthropicErrorBody(const std::string& type, const std::string& message, const std::string& request_id);

// Opaque signature we put on thinking blocks (clients echo it back; any signature is accepted on input).
std::string ThinkingSignature(const std::string& thinking);

// Collects the events of one generation into the non-streaming response object.
class AnthropicMessageBuilder {
 public:
  AnthropicMessageBuilder(std::string message_id, std::string model);
  void Add(const ChatEvent& event);
  Json Build() const;  // call after the kFinish event

 private:
  std::string id_;
  std::string model_;
  Json content_ = Json::array();
  std::vector<std::string> tool_args_;  // raw argument text per content index (tool_use blocks)
  ChatEvent finish_;
};

// Turns the event stream into SSE frames ("event: X\ndata: {...}\n\n") following the grammar of §2.2:
// message_start, gapless content blocks (each closed before the next opens), one message_delta, message_stop.
class AnthropicStreamEncoder {
 public:
  // keepalive_thinking: an idle keep-alive opens a thinking block (the model is expected to think first)
  // rather than a text block.
  AnthropicStreamEncoder(std::string message_id, std::string model, bool keepalive_thinking);
  std::string Start(int input_tokens);  // message_start
  std::string Event(const ChatEvent& event);
  // Sent when nothing happened for a while: a ping, and (after message_start) an empty delta in an open
  // block, because Claude Code's stream watchdog ignores pings.
  std::string KeepAlive();
  // A mid-stream failure: `event: error` (type "api_error", "overloaded_error", ...); nothing follows it.
  std::string Error(const std::string& type, const std::string& message);
  bool finished() const { return finished_; }

 private:
  std::string OpenBlock(const Json& block);
  std::string CloseBlock();
  std::string Frame(const Json& data);

  std::string id_;
  std::string model_;
  bool keepalive_thinking_;
  int next_index_ = 0;
  enum class Open { kNone, kText, kThinking, kTool } open_ = Open::kNone;
  std::string thinking_text_;  // of the open thinking block, for its signature
  bool started_ = false;
  bool finished_ = false;
};

}  // namespace pensieve::api

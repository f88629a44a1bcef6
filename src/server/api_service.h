#pragma once
// The HTTP face of Pensieve: routes, auth, request ids, the error envelopes, SSE streaming with keep-alives
// and disconnect detection, the request log line and /metrics. Everything model-related goes through the
// ChatPipeline; this file never touches tokens beyond counting them.
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include "api/pipeline.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace pensieve::server {

struct ServiceOptions {
  std::string model_id = "pensieve";          // the loaded model's name in /v1/models
  std::map<std::string, std::string> aliases; // --alias NAME=MODEL: extra names listed and accepted
  std::string api_key;                        // empty: no auth
  int keepalive_ms = 4000;                    // ping + empty delta while nothing else was sent (Claude Code's
                                              // watchdog ignores ping; keep-alives must be ≤ 5 s apart)
  int retry_after_s = 1;                      // 529 answers
  int default_openai_max_tokens = 4096;       // chat completions without max_tokens
  FILE* log = stderr;                         // one line per request; nullptr: quiet
  FILE* prompt_log = nullptr;                 // --log-prompts: one JSON line per generation request with the
                                              // rendered prompt text and its token ids (debugging templates)
};

class ApiService {
 public:
  ApiService(api::ChatPipeline& pipeline, ServiceOptions options);
  void Handle(const HttpRequest& request, HttpResponder& response);
  void HandleTransportError(const HttpRequest& request, HttpResponder& response, int status, const std::string& message);
  // Set on shutdown: in-flight streams end with an error event, new requests get 529.
  void BeginShutdown() { shutting_down_.store(true); }
  const Metrics& metrics() const { return metrics_; }

 private:
  struct Outcome {  // for the log line and metrics
    int prompt_tokens = 0, cached_tokens = 0, output_tokens = 0;
    std::string note;
  };
  void Route(const HttpRequest& req, HttpResponder& res, const std::string& request_id, Outcome& out);
  void Messages(const HttpRequest& req, HttpResponder& res, const std::string& rid, Outcome& out);
  void CountTokens(const HttpRequest& req, HttpResponder& res, const std::string& rid, Outcome& out);
  void OpenAIChat(const HttpRequest& req, HttpResponder& res, const std::string& rid, bool completion, Outcome& out);
  void Models(const HttpRequest& req, HttpResponder& res, const std::string& rid);
  // An API's error body from (error type, message, request id): api::AnthropicErrorBody, or OpenAI's envelope.
  using ErrorEnvelope = std::string (*)(const std::string& type, const std::string& message, const std::string& rid);
  // The envelope of the API that `path` (normalised) belongs to.
  static ErrorEnvelope EnvelopeFor(const std::string& path);
  // One error sender for both APIs: the headers (request-id, x-should-retry, retry-after) are the server's and
  // the same for both; only the body is the API's.
  void SendError(HttpResponder& res, const std::string& rid, int status, const std::string& type,
                 const std::string& message, ErrorEnvelope envelope);
  void SendJson(HttpResponder& res, const std::string& rid, int status, const std::string& body);
  bool Authorized(const HttpRequest& req) const;
  static void RecordFinish(const api::ChatEvent& ev, Outcome& out);
  void LogPrompt(const std::string& rid, const api::PreparedPrompt& prompt);
  template <typename Builder>
  void RespondWhole(api::Generation& gen, HttpResponder& res, const std::string& rid, Outcome& out, Builder& builder);
  // One streaming driver for both APIs. `Encoder` (api::AnthropicStreamEncoder, api::OpenAIStreamEncoder) turns
  // events into SSE frames: Event(ev), KeepAlive(), Error(type, message); `start` is its opening frames.
  template <typename Encoder>
  void RespondStream(api::Generation& gen, HttpResponder& res, const std::string& rid, Outcome& out, Encoder& enc,
                     const std::string& start);

  api::ChatPipeline& pipeline_;
  ServiceOptions options_;
  Metrics metrics_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<int> in_flight_{0};
  std::mutex prompt_log_mu_;
  HttpServer* server_ = nullptr;
  long started_unix_;

 public:
  void set_server(HttpServer* server) { server_ = server; }
};

}  // namespace pensieve::server

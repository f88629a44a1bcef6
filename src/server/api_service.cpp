#include "server/api_service.h"

#include <chrono>
#include <ctime>

#include "api/anthropic.h"
#include "api/ids.h"
#include "api/json_body.h"
#include "api/openai.h"

namespace pensieve::server {
namespace {

using Clock = std::chrono::steady_clock;
using api::ChatEvent;
using api::Json;

std::string Rfc3339(long unix_s) {
  std::time_t t = unix_s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

bool IsOpenAIPath(const std::string& path) { return path == "/v1/chat/completions" || path == "/v1/completions"; }

// Normalises what clients get wrong about base URLs: a trailing slash, and "/v1/v1/..." from a base URL
// that already ended in /v1.
// Metrics label for a path: known endpoints only (client-chosen paths must not grow the label set).
std::string EndpointLabel(const std::string& path) {
  for (const char* known : {"/", "/health", "/metrics", "/v1/models", "/v1/messages", "/v1/messages/count_tokens",
                            "/v1/chat/completions", "/v1/completions"}) {
    if (path == known) return path;
  }
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  return "other";
}

std::string NormalisePath(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.rfind("/v1/v1/", 0) == 0) path.erase(0, 3);
  return path;
}

enum class DriveResult { kDone, kClientGone, kShutdown };

}  // namespace

ApiService::ApiService(api::ChatPipeline& pipeline, ServiceOptions options)
    : pipeline_(pipeline), options_(std::move(options)) {
  started_unix_ = static_cast<long>(std::time(nullptr));
}

bool ApiService::Authorized(const HttpRequest& req) const {
  if (options_.api_key.empty()) return true;
  if (req.Header("x-api-key") == options_.api_key) return true;
  std::string auth = req.Header("authorization");
  return auth.size() > 7 && (auth.compare(0, 7, "Bearer ") == 0 || auth.compare(0, 7, "bearer ") == 0) &&
         auth.substr(7) == options_.api_key;
}

void ApiService::SendJson(HttpResponder& res, const std::string& rid, int status, const std::string& body) {
  res.Send(status, {{"Content-Type", "application/json"}, {"request-id", rid}}, body);
}

ApiService::ErrorEnvelope ApiService::EnvelopeFor(const std::string& path) {
  if (IsOpenAIPath(path)) {
    // OpenAI's envelope has no request id (it travels in the request-id header alone).
    return [](const std::string& type, const std::string& message, const std::string&) {
      return api::OpenAIErrorBody(type, message);
    };
  }
  return &api::AnthropicErrorBody;
}

void ApiService::SendError(HttpResponder& res, const std::string& rid, int status, const std::string& type,
                           const std::string& message, ErrorEnvelope envelope) {
  Headers h = {{"Content-Type", "application/json"}, {"request-id", rid}};
  bool retry = status == 408 || status == 409 || status == 429 || status >= 500;
  h.emplace_back("x-should-retry", retry ? "true" : "false");
  if (status == 529 || status == 429 || status == 503) h.emplace_back("retry-after", std::to_string(options_.retry_after_s));
  res.Send(status, h, envelope(type, message, rid));
}

void ApiService::HandleTransportError(const HttpRequest& req, HttpResponder& res, int status, const std::string& message) {
  std::string rid = api::NewId("req_");
  const char* type = status == 413 ? "request_too_large"
                     : status == 408 ? "timeout_error"
                     : status == 503 ? "overloaded_error"
                     : status >= 500 ? "api_error"
                                     : "invalid_request_error";
  SendError(res, rid, status, type, message, EnvelopeFor(NormalisePath(req.path)));
  metrics_.CountRequest(EndpointLabel(NormalisePath(req.path)), status);
  if (options_.log) {
    std::fprintf(options_.log, "pensieve: %s %s %d %s (%s)\n", req.method.empty() ? "-" : req.method.c_str(),
                 req.target.empty() ? "-" : req.target.c_str(), status, rid.c_str(), message.c_str());
    std::fflush(options_.log);
  }
}

void ApiService::Handle(const HttpRequest& req, HttpResponder& res) {
  auto t0 = Clock::now();
  std::string rid = api::NewId("req_");
  Outcome out;
  std::string path = NormalisePath(req.path);
  const ErrorEnvelope envelope = EnvelopeFor(path);
  auto error = [&](int status, const std::string& type, const std::string& message) {
    SendError(res, rid, status, type, message, envelope);
  };
  try {
    Route(req, res, rid, out);
  } catch (const api::RequestError& e) {
    if (!res.sent()) error(e.status(), e.type(), e.what());
  } catch (const engine::QueueFull& e) {
    if (!res.sent()) error(529, "overloaded_error", std::string("the server is busy: ") + e.what());
  } catch (const engine::BadRequest& e) {
    if (!res.sent()) error(400, "invalid_request_error", e.what());
  } catch (const Error& e) {
    if (!res.sent()) error(500, "api_error", e.what());
  } catch (const std::exception& e) {
    if (!res.sent()) error(500, "api_error", std::string("internal error: ") + e.what());
  }
  int status = res.sent() ? res.status() : 0;
  if (res.failed() && out.note.empty()) out.note = "client gone";
  metrics_.CountRequest(EndpointLabel(path), status);
  if (out.prompt_tokens || out.output_tokens) metrics_.CountTokens(out.prompt_tokens, out.cached_tokens, out.output_tokens);
  if (options_.log) {
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::fprintf(options_.log, "pensieve: %s %s %d in=%d cached=%d out=%d %.0fms %s%s%s\n", req.method.c_str(),
                 req.target.c_str(), status, out.prompt_tokens, out.cached_tokens, out.output_tokens, ms, rid.c_str(),
                 out.note.empty() ? "" : " ", out.note.c_str());
    std::fflush(options_.log);
  }
}

void ApiService::Route(const HttpRequest& req, HttpResponder& res, const std::string& rid, Outcome& out) {
  std::string path = NormalisePath(req.path);
  const std::string& m = req.method;
  bool is_get = m == "GET" || m == "HEAD";
  if (path == "/" || path == "/health") {
    if (!is_get) throw api::RequestError(405, "invalid_request_error", "method " + m + " not allowed on " + path);
    if (path == "/") {
      res.Send(200, {{"Content-Type", "text/plain"}, {"request-id", rid}}, "pensieve is running\n");
      return;
    }
    auto s = pipeline_.engine().Stats();
    SendJson(res, rid, 200,
             Dump({{"status", shutting_down_.load() ? "shutting_down" : "ok"},
                   {"model", options_.model_id},
                   {"context_length", pipeline_.context_length()},
                   {"running", s.running},
                   {"queued", s.queued}}));
    return;
  }
  if (path == "/metrics") {
    if (!is_get) throw api::RequestError(405, "invalid_request_error", "method " + m + " not allowed on /metrics");
    auto s = pipeline_.engine().Stats();
    res.Send(200, {{"Content-Type", "text/plain; version=0.0.4"}, {"request-id", rid}},
             metrics_.Render(s, server_ ? server_->active_connections() : 0, in_flight_.load()));
    return;
  }
  if (path.rfind("/v1/", 0) != 0) throw api::RequestError(404, "not_found_error", "no route for " + m + " " + path);
  if (!Authorized(req)) {
    throw api::RequestError(401, "authentication_error", "invalid x-api-key (or Authorization: Bearer) credentials");
  }
  if (path == "/v1/models" || path.rfind("/v1/models/", 0) == 0) {
    if (!is_get) throw api::RequestError(405, "invalid_request_error", "method " + m + " not allowed on " + path);
    Models(req, res, rid);
    return;
  }
  bool known = path == "/v1/messages" || path == "/v1/messages/count_tokens" || path == "/v1/chat/completions" ||
               path == "/v1/completions";
  if (!known) throw api::RequestError(404, "not_found_error", "no route for " + m + " " + path);
  if (m != "POST") throw api::RequestError(405, "invalid_request_error", "method " + m + " not allowed on " + path + " (use POST)");
  if (path == "/v1/messages/count_tokens") return CountTokens(req, res, rid, out);
  if (shutting_down_.load()) throw api::RequestError(529, "overloaded_error", "the server is shutting down");
  in_flight_.fetch_add(1);
  struct Guard {
    std::atomic<int>& n;
    ~Guard() { n.fetch_sub(1); }
  } guard{in_flight_};
  if (path == "/v1/messages") return Messages(req, res, rid, out);
  OpenAIChat(req, res, rid, path == "/v1/completions", out);
}

void ApiService::Models(const HttpRequest& req, HttpResponder& res, const std::string& rid) {
  std::string path = NormalisePath(req.path);
  std::vector<std::string> ids = {options_.model_id};
  for (const auto& [name, target] : options_.aliases) {
    if (name != options_.model_id) ids.push_back(name);
  }
  auto info = [&](const std::string& id) {
    return Json{{"type", "model"},
                {"id", id},
                {"display_name", id},
                {"created_at", Rfc3339(started_unix_)},
                {"object", "model"},
                {"created", started_unix_},
                {"owned_by", "pensieve"},
                {"max_input_tokens", pipeline_.context_length()},
                {"max_tokens", pipeline_.context_length()}};
  };
  if (path == "/v1/models") {
    Json data = Json::array();
    for (const auto& id : ids) data.push_back(info(id));
    SendJson(res, rid, 200,
             Dump({{"object", "list"}, {"data", data}, {"has_more", false}, {"first_id", ids.front()}, {"last_id", ids.back()}}));
    return;
  }
  std::string id = path.substr(std::string("/v1/models/").size());
  for (const auto& known : ids) {
    if (known == id) {
      SendJson(res, rid, 200, Dump(info(id)));
      return;
    }
  }
  throw api::RequestError(404, "not_found_error", "model '" + id + "' not found (served: " + options_.model_id + ")");
}

void ApiService::CountTokens(const HttpRequest& req, HttpResponder& res, const std::string& rid, Outcome& out) {
  Json body = api::ParseJsonBody(req.body);
  api::ChatRequest creq = api::ParseAnthropicRequest(body, {true, pipeline_.vision()});
  creq.max_tokens = 0;
  int n = pipeline_.CountTokens(creq);
  out.note = "count_tokens=" + std::to_string(n);
  SendJson(res, rid, 200, Dump({{"input_tokens", n}}));
}

namespace {

// Pulls events from a generation until it finishes, the client leaves or the server shuts down.
// `on_event` writes (returns false when the write failed); `on_idle` is called when `keepalive_ms` passed
// without any write.
template <typename OnEvent, typename OnIdle>
DriveResult Drive(api::Generation& gen, HttpResponder& res, const std::atomic<bool>& shutting_down, int keepalive_ms,
                  OnEvent on_event, OnIdle on_idle) {
  constexpr auto kPeriod = std::chrono::milliseconds(100);
  auto last = Clock::now();
  auto checked = last;
  for (;;) {
    ChatEvent ev;
    if (gen.Next(&ev, kPeriod)) {
      if (!on_event(ev)) {
        gen.Cancel();
        return DriveResult::kClientGone;
      }
      // Prefill progress writes nothing, so it must not postpone the keep-alive.
      if (ev.kind != ChatEvent::Kind::kPrefill) last = Clock::now();
      if (ev.kind == ChatEvent::Kind::kFinish || ev.kind == ChatEvent::Kind::kError) return DriveResult::kDone;
      // Events can arrive faster than the period for the whole answer, and a non-streaming one writes nothing
      // until the end: look for a departed client on the clock, not only when the events pause.
      if (Clock::now() - checked < kPeriod) continue;
    } else if (gen.done()) {
      return DriveResult::kDone;
    }
    checked = Clock::now();
    if (res.ClientGone()) {
      gen.Cancel();
      return DriveResult::kClientGone;
    }
    if (shutting_down.load()) {
      gen.Cancel();
      return DriveResult::kShutdown;
    }
    if (Clock::now() - last >= std::chrono::milliseconds(keepalive_ms)) {
      if (!on_idle()) {
        gen.Cancel();
        return DriveResult::kClientGone;
      }
      last = Clock::now();
    }
  }
}

const Headers kSseHeaders = {{"Content-Type", "text/event-stream; charset=utf-8"},
                             {"Cache-Control", "no-cache"},
                             {"X-Accel-Buffering", "no"}};

}  // namespace

// The finish event's usage goes to the request's log line and metrics.
void ApiService::RecordFinish(const ChatEvent& ev, Outcome& out) {
  if (ev.kind != ChatEvent::Kind::kFinish) return;
  out.prompt_tokens = ev.usage.prompt_tokens();
  out.cached_tokens = ev.usage.cached_tokens;
  out.output_tokens = ev.usage.output_tokens;
}

// Non-streaming answer, shared by both APIs: runs the generation to its end, feeding every event to `builder`
// (AnthropicMessageBuilder or OpenAIResponseBuilder), then sends the built JSON; 499 when the client left.
template <typename Builder>
void ApiService::RespondWhole(api::Generation& gen, HttpResponder& res, const std::string& rid, Outcome& out,
                              Builder& builder) {
  std::string error;
  DriveResult r = Drive(gen, res, shutting_down_, options_.keepalive_ms,
                        [&](const ChatEvent& ev) {
                          builder.Add(ev);
                          RecordFinish(ev, out);
                          if (ev.kind == ChatEvent::Kind::kError) error = ev.text;
                          return true;
                        },
                        [] { return true; });
  if (r == DriveResult::kClientGone) {
    metrics_.CountDisconnect();
    out.note = "client gone";
    res.set_close(true);
    res.Send(499, {{"request-id", rid}}, "");
    return;
  }
  if (r == DriveResult::kShutdown) throw api::RequestError(529, "overloaded_error", "the server is shutting down");
  if (!error.empty()) throw api::RequestError(500, "api_error", error);
  SendJson(res, rid, 200, Dump(builder.Build()));
}

// Streaming answer, shared by both APIs: SSE headers and the encoder's opening frames, then every event as the
// encoder frames it, its keep-alive when idle; the encoder's error event on shutdown. A departed client gets
// nothing more and its connection is closed.
template <typename Encoder>
void ApiService::RespondStream(api::Generation& gen, HttpResponder& res, const std::string& rid, Outcome& out,
                               Encoder& enc, const std::string& start) {
  Headers h = kSseHeaders;
  h.emplace_back("request-id", rid);
  if (!res.BeginStream(200, h) || !res.Write(start)) {
    gen.Cancel();
    return;
  }
  DriveResult r = Drive(gen, res, shutting_down_, options_.keepalive_ms,
                        [&](const ChatEvent& ev) {
                          RecordFinish(ev, out);
                          std::string frames = enc.Event(ev);
                          return frames.empty() || res.Write(frames);
                        },
                        [&] { return res.Write(enc.KeepAlive()); });
  if (r == DriveResult::kClientGone) {
    metrics_.CountDisconnect();
    out.note = "client gone";
    res.set_close(true);
    return;
  }
  if (r == DriveResult::kShutdown) res.Write(enc.Error("overloaded_error", "the server is shutting down"));
  res.EndStream();
}

void ApiService::LogPrompt(const std::string& rid, const api::PreparedPrompt& prompt) {
  if (!options_.prompt_log) return;
  const std::string line =
      Dump(Json{{"request_id", rid}, {"text", prompt.text}, {"tokens", prompt.tokens}, {"max_tokens", prompt.max_tokens}}) +
      "\n";
  std::lock_guard lock(prompt_log_mu_);
  std::fwrite(line.data(), 1, line.size(), options_.prompt_log);
  std::fflush(options_.prompt_log);
}

void ApiService::Messages(const HttpRequest& req, HttpResponder& res, const std::string& rid, Outcome& out) {
  Json body = api::ParseJsonBody(req.body);
  std::vector<std::string> notes;
  api::ChatRequest creq = api::ParseAnthropicRequest(body, {false, pipeline_.vision()}, &notes);
  for (const auto& n : notes) out.note += (out.note.empty() ? "" : "; ") + n;
  api::PreparedPrompt prompt = pipeline_.Prepare(creq);
  LogPrompt(rid, prompt);
  out.prompt_tokens = static_cast<int>(prompt.tokens.size());
  int input_tokens = out.prompt_tokens;
  std::unique_ptr<api::Generation> gen = pipeline_.Start(creq, std::move(prompt));
  std::string msg_id = api::NewId("msg_");

  if (!creq.stream) {
    api::AnthropicMessageBuilder builder(msg_id, creq.model);
    RespondWhole(*gen, res, rid, out, builder);
    return;
  }

  bool keepalive_thinking = creq.thinking.value_or(false) && pipeline_.reasoning_model();
  api::AnthropicStreamEncoder enc(msg_id, creq.model, keepalive_thinking);
  RespondStream(*gen, res, rid, out, enc, enc.Start(input_tokens));
}

void ApiService::OpenAIChat(const HttpRequest& req, HttpResponder& res, const std::string& rid, bool completion,
                            Outcome& out) {
  Json body = api::ParseJsonBody(req.body);
  api::OpenAIOptions oopts;
  api::ChatRequest creq = completion ? api::ParseOpenAICompletionRequest(body, &oopts)
                                     : api::ParseOpenAIChatRequest(body, options_.default_openai_max_tokens, &oopts);
  api::PreparedPrompt prompt = pipeline_.Prepare(creq);
  LogPrompt(rid, prompt);
  out.prompt_tokens = static_cast<int>(prompt.tokens.size());
  std::unique_ptr<api::Generation> gen = pipeline_.Start(creq, std::move(prompt));
  std::string id = api::NewId(completion ? "cmpl-" : "chatcmpl-");
  if (!creq.stream) {
    api::OpenAIResponseBuilder builder(id, creq.model, completion, creq.logprobs);
    RespondWhole(*gen, res, rid, out, builder);
    return;
  }
  api::OpenAIStreamEncoder enc(id, creq.model, completion, oopts.include_usage, creq.logprobs);
  RespondStream(*gen, res, rid, out, enc, enc.Start());
}

}  // namespace pensieve::server

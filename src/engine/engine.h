#pragma once
// The engine service: the one boundary between the model-running thread(s) and everything above it.
//
// Contract (shared by the real engine and test fakes):
//  - Submit() never blocks on model work; it queues the request and returns its id, or throws QueueFull when
//    the waiting queue is at its limit (the HTTP layer answers 529 + retry-after), or BadRequest when the
//    request itself is unacceptable (empty prompt, out-of-range sampling parameter, prompt longer than the
//    context: the HTTP layer answers 400).
//  - Sink callbacks run on the engine thread. They must be quick and never block: push into a queue and return.
//  - on_prefill_progress (optional) is called during long prefills, at least once per chunk.
//  - on_token is called once per generated token; returning false stops the sequence after this token
//    (finish reason kCancelled): that is how text-level stop strings and client disconnects end generation.
//  - on_finish is called exactly once, last, after which the sink is never touched again and the sequence's
//    KV blocks are back in the pool (or held by a reclaimable prefix-cache entry, see EngineStats).
//  - Cancel() may be called from any thread at any time (also for ids already finished); the sequence stops
//    within one decode step.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/constraint.h"
#include "util/error.h"

namespace pensieve::engine {

// Thrown by Submit() when the waiting queue is full.
class QueueFull : public Error {
 public:
  using Error::Error;
};

// Thrown by Submit() (and the Sampler it builds) when the request is at fault, not the engine.
class BadRequest : public Error {
 public:
  using Error::Error;
};

inline void RequireValid(bool cond, const std::string& msg) {
  if (!cond) throw BadRequest(msg);
}

// Parameters of the sampler chain. Defaults leave the distribution untouched; temperature 0 is greedy.
struct SamplingParams {
  float temperature = 1.0f;
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repetition_penalty = 1.0f;  // 1: off; applied over the last repetition_window tokens (prompt included)
  int repetition_window = 64;
  float presence_penalty = 0.0f;    // OpenAI semantics, over generated tokens
  float frequency_penalty = 0.0f;
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::optional<uint64_t> seed;     // same seed + same request -> same tokens
  int top_logprobs = 0;             // > 0: report that many alternatives per token
};

struct GenerateRequest {
  std::vector<int32_t> prompt;       // already templated and tokenized
  int max_tokens = 256;              // clamped by the engine to what the context still holds
  SamplingParams sampling;
  std::vector<int32_t> stop_tokens;  // e.g. EOS ids: sampling one finishes with kStopToken; it is not reported
                                     // through on_token
  // Optional constrained decoding (constraint.h): tokens are drawn only among those it allows; the sequence
  // finishes with kStopToken as soon as it is Complete(). Used by the engine thread only.
  std::shared_ptr<TokenConstraint> constraint;
};

struct TokenOut {
  int32_t id = 0;
  float logprob = 0.0f;                              // log-softmax of the final (post-processing) distribution
  std::vector<std::pair<int32_t, float>> top;        // top_logprobs alternatives, best first
};

enum class FinishReason { kLength, kStopToken, kCancelled, kError };

struct Finish {
  FinishReason reason = FinishReason::kLength;
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;  // prompt tokens whose KV came from a reused prefix
  int generated_tokens = 0;      // tokens reported through on_token
  bool stop_token = false;       // the model generated a stop token (reason kStopToken); usage counts it
  std::string error;             // set when reason == kError
};

struct Sink {
  std::function<void(int done, int total)> on_prefill_progress;
  std::function<bool(const TokenOut&)> on_token;
  std::function<void(const Finish&)> on_finish;
};

struct EngineStats {
  int running = 0;
  int queued = 0;
  uint64_t prompt_tokens_total = 0;
  uint64_t generated_tokens_total = 0;
  double prefill_tokens_per_s = 0;   // recent average
  double decode_tokens_per_s = 0;    // recent average
  size_t kv_blocks_used = 0;     // in use, prefix-cache entries included
  size_t kv_blocks_total = 0;
  size_t kv_blocks_cached = 0;   // held by finished sequences kept for prefix reuse (reclaimable on demand)
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual uint64_t Submit(GenerateRequest request, Sink sink) = 0;
  virtual void Cancel(uint64_t id) = 0;
  virtual EngineStats Stats() const = 0;
  virtual int context_length() const = 0;
  virtual int vocab_size() const = 0;
  // Finishes or cancels everything in flight (each gets on_finish) and stops the thread(s).
  virtual void Shutdown() = 0;
};

}  // namespace pensieve::engine

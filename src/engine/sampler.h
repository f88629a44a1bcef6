#pragma once
// The sampler chain of one sequence: turns a row of logits into the next token.
//
// Order (each stage sees the output of the one before):
//   logit bias -> repetition penalty (last repetition_window tokens, prompt included; HF/llama.cpp rule:
//   positive logits divided by the penalty, negative ones multiplied) -> presence/frequency penalties over
//   generated tokens (OpenAI rule: logit -= presence * [count > 0] + frequency * count) -> temperature
//   (0: argmax, nothing below runs) -> top-k -> top-p (smallest prefix of the sorted distribution whose mass
//   reaches top_p) -> min-p (keep p >= min_p * max p) -> draw.
//
// Reported log-probabilities (TokenOut::logprob and ::top) are the log-softmax of the distribution the token
// was actually drawn from: penalised logits divided by the temperature, restricted to the tokens that survived
// top-k/top-p/min-p, renormalised. Tokens cut by truncation never appear among the alternatives. For greedy
// decoding (temperature 0) the distribution is the penalised logits at temperature 1 without truncation, so
// the numbers stay informative.
//
// Determinism: the draw uses std::mt19937_64 with our own 53-bit double conversion (not
// std::uniform_real_distribution, whose output is implementation-defined), so the same seed and the same
// logits sequence give the same tokens on every platform. Without a seed the generator is seeded from
// std::random_device.
//
// Allocation: all buffers are sized at construction; Sample() allocates nothing (TokenOut::top reuses its
// capacity when the caller reuses the TokenOut). Not thread-safe: one Sampler per sequence, used by one thread.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "engine/engine.h"

namespace pensieve::engine {

class Sampler {
 public:
  // Throws Error when a parameter is out of range (names the field). max_generated bounds the number of
  // distinct generated tokens tracked without reallocation (the engine passes the request's max_tokens).
  Sampler(const SamplingParams& params, int vocab_size, int max_generated = 1024);

  // Feeds the prompt into the repetition window (only its last repetition_window tokens matter).
  void AcceptPrompt(std::span<const int32_t> prompt);
  // Records a generated token: repetition window, presence and frequency counts.
  void Accept(int32_t token);

  // Picks the next token from logits (vocab_size floats); fills out->id, ->logprob and ->top
  // (params.top_logprobs entries). Does not call Accept(). With `allowed` (vocab_size entries), tokens whose
  // entry is 0 are removed first (logit -inf), so the chain runs on the constrained distribution; when it
  // removes everything, the result is token 0 with logprob 0 (callers check).
  int32_t Sample(std::span<const float> logits, TokenOut* out, std::span<const uint8_t> allowed = {});

  const SamplingParams& params() const { return params_; }

 private:
  void ApplyPenalties();
  int32_t SampleGreedy(TokenOut* out);
  double NextUniform();  // [0, 1)

  SamplingParams params_;
  int vocab_;
  std::mt19937_64 rng_;

  std::vector<float> work_;        // the logits being processed (vocab_)
  std::vector<int32_t> cand_;      // candidate token ids (vocab_), best first once sorted
  std::vector<float> probs_;       // relative probabilities of the candidates, by token id (vocab_)
  static constexpr int kBuckets = 4096;
  std::vector<double> bucket_mass_;  // top-p: probability mass per logit bucket (kBuckets)
  std::vector<float> bias_;        // dense logit bias (vocab_), empty when no bias

  std::vector<int32_t> window_;    // ring buffer of the last repetition_window tokens
  size_t window_pos_ = 0;
  size_t window_fill_ = 0;
  std::vector<uint8_t> mark_;      // scratch: token already penalised in this step (vocab_)

  std::vector<int32_t> counts_;    // generated-token counts (vocab_), only when presence/frequency are on
  std::vector<int32_t> distinct_;  // generated tokens with count > 0
};

}  // namespace pensieve::engine

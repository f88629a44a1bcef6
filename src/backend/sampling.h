#pragma once
// Drawing a token from a row of logits: the sampling chain every backend runs, described once here.
//
// Order (each stage sees the output of the one before):
//   allowed mask (removed tokens get -inf) -> per-token adjustments (logit += bias; then, where `repeat`, the
//   repetition penalty: positive logits divided by it, negative ones multiplied; then logit -= subtract) ->
//   NaN becomes -inf -> temperature (0: argmax, ties to the lowest id; nothing below runs) -> top-k (ties at
//   the k-th value broken towards lower ids) -> top-p (the smallest prefix of the distribution sorted by
//   probability, then id, whose mass reaches top_p) -> min-p (keep p >= min_p * max p) -> draw.
// Tokens whose temperature-scaled logit is more than 40 below the maximum are dropped before truncation
// (relative probability < e^-40: below float rounding of the kept mass).
//
// The draw: the kept tokens in ascending id order, the first whose running probability sum exceeds u * total
// (u is given, so the random stream is the caller's: engine/sampler.h keeps it per sequence).
//
// Reported log-probabilities are the log-softmax of the distribution the token was drawn from: adjusted logits
// divided by the temperature, restricted to the kept tokens, renormalised; `top` lists the best kept tokens.
// For greedy decoding the distribution is the adjusted logits at temperature 1 without truncation. When every
// token is removed the result is token 0 (the argmax of all -inf) with logprob 0 and no alternatives.
#include <cstdint>
#include <span>
#include <vector>

namespace pensieve::backend {

constexpr int kMaxTopLogprobs = 20;

struct SampleParams {
  float temperature = 1.0f;  // 0: greedy
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repetition_penalty = 1.0f;
  int top_logprobs = 0;      // alternatives reported, <= kMaxTopLogprobs
};

// One token's adjustment (one entry per distinct token).
struct TokenAdjust {
  int32_t token = 0;
  float bias = 0.0f;      // added first (logit_bias)
  float subtract = 0.0f;  // subtracted last (presence + frequency * count)
  int32_t repeat = 0;     // 1: the repetition penalty applies (the token is in the repetition window)
};

struct SampleRow {
  int64_t logits_row = 0;               // row of the logits the step's Sample() reads
  SampleParams params;
  std::span<const TokenAdjust> adjust;  // distinct tokens, any order
  std::span<const uint8_t> allowed;     // vocab entries (0: removed), or empty: every token allowed
  double u = 0.0;                       // uniform draw in [0, 1); unused when greedy
};

struct SampleResult {
  int32_t id = 0;
  float logprob = 0.0f;
  int32_t n_top = 0;
  int32_t top_ids[kMaxTopLogprobs] = {};
  float top_logprobs[kMaxTopLogprobs] = {};
};

// The chain on a host row: the cpu backend's sampler and the reference the others are tested against.
// Scratch is sized at construction; Sample() allocates nothing. One instance per thread.
class HostSampler {
 public:
  // sum over i < n of exp(x[i] - max); a backend may give a vectorised one (the greedy logprob's normaliser
  // costs ~0.5 ms per 128k-token row with scalar exp).
  using ExpSumFn = double (*)(const float* x, int64_t n, float max);
  explicit HostSampler(int vocab, ExpSumFn exp_sum = nullptr);
  int vocab() const { return vocab_; }
  void Sample(std::span<const float> logits, const SampleRow& row, SampleResult* out);

 private:
  void Greedy(const SampleParams& p, SampleResult* out);

  int vocab_;
  ExpSumFn exp_sum_;
  std::vector<float> work_;      // the logits being processed
  std::vector<int32_t> cand_;    // candidate ids
  std::vector<float> probs_;     // relative probabilities of the candidates, by token id
  std::vector<double> bucket_mass_;
  std::vector<uint8_t> kept_;    // draw: kept tokens by id, when too many to sort
};

}  // namespace pensieve::backend

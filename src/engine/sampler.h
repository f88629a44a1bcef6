#pragma once
// The sampling state of one sequence: what the sampling chain (backend/sampling.h) needs from one step to the
// next - the repetition window, the counts behind presence/frequency penalties, the logit bias and the random
// stream - turned into one backend::SampleRow per step (Prepare). The chain itself runs in the backend, on the
// device for GPU models.
//
// Penalties (folded into the row's per-token adjustments): repetition penalty over the last
// repetition_window tokens, prompt included (HF/llama.cpp rule: positive logits divided by the penalty,
// negative ones multiplied; each distinct token once); presence/frequency penalties over generated tokens
// (OpenAI rule: logit -= presence * [count > 0] + frequency * count); logit bias added first.
//
// Determinism: the draw's uniform number comes from std::mt19937_64 with our own 53-bit double conversion
// (not std::uniform_real_distribution, whose output is implementation-defined), so the same seed and the same
// logits give the same tokens on every platform. Without a seed the generator is seeded from std::random_device.
//
// Allocation: buffers are sized at construction; Prepare() allocates nothing. Not thread-safe: one Sampler per
// sequence, used by one thread.
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "backend/sampling.h"
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

  // This step's row: parameters, per-token adjustments, `allowed` (vocab entries, 0: removed; empty: all) and
  // a fresh uniform draw (when not greedy). The row's spans point into this Sampler (and `allowed`) and stay
  // valid until the next Prepare(). logits_row is left for the caller.
  void Prepare(backend::SampleRow* row, std::span<const uint8_t> allowed = {});
  // Prepare + the chain on the host (tests and host-side callers). Does not call Accept().
  int32_t Sample(std::span<const float> logits, TokenOut* out, std::span<const uint8_t> allowed = {});

  const SamplingParams& params() const { return params_; }

  // A chain result as the engine reports it.
  static void ToTokenOut(const backend::SampleResult& r, TokenOut* out);

 private:
  double NextUniform();  // [0, 1)
  backend::TokenAdjust& Entry(int32_t token);

  SamplingParams params_;
  int vocab_;
  std::mt19937_64 rng_;

  std::vector<int32_t> window_;    // ring buffer of the last repetition_window tokens
  size_t window_pos_ = 0;
  size_t window_fill_ = 0;
  std::vector<int32_t> counts_;    // generated-token counts (vocab_), only when presence/frequency are on
  std::vector<int32_t> distinct_;  // generated tokens with count > 0
  std::vector<backend::TokenAdjust> adjust_;  // this step's adjustments, one per distinct token
  std::vector<int32_t> slot_;      // token -> index in adjust_ while building (-1), only when adjusting

  std::unique_ptr<backend::HostSampler> host_;  // Sample() only
  backend::SampleResult result_;
};

}  // namespace pensieve::engine

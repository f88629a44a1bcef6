#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/error.h"

namespace pensieve::engine {

Sampler::Sampler(const SamplingParams& params, int vocab_size, int max_generated)
    : params_(params), vocab_(vocab_size) {
  Require(vocab_size > 0, "sampler: vocab_size must be positive, got " + std::to_string(vocab_size));
  RequireValid(std::isfinite(params.temperature) && params.temperature >= 0.0f,
               "sampling: temperature must be >= 0, got " + std::to_string(params.temperature));
  RequireValid(params.top_k >= 0, "sampling: top_k must be >= 0, got " + std::to_string(params.top_k));
  RequireValid(params.top_p >= 0.0f && params.top_p <= 1.0f,
               "sampling: top_p must be in [0, 1], got " + std::to_string(params.top_p));
  RequireValid(params.min_p >= 0.0f && params.min_p <= 1.0f,
               "sampling: min_p must be in [0, 1], got " + std::to_string(params.min_p));
  RequireValid(std::isfinite(params.repetition_penalty) && params.repetition_penalty > 0.0f,
               "sampling: repetition_penalty must be > 0, got " + std::to_string(params.repetition_penalty));
  RequireValid(params.repetition_window >= 0,
               "sampling: repetition_window must be >= 0, got " + std::to_string(params.repetition_window));
  RequireValid(std::isfinite(params.presence_penalty) && std::isfinite(params.frequency_penalty),
               "sampling: presence_penalty and frequency_penalty must be finite");
  RequireValid(params.top_logprobs >= 0 && params.top_logprobs <= backend::kMaxTopLogprobs,
               "sampling: top_logprobs must be in [0, 20], got " + std::to_string(params.top_logprobs));

  size_t max_entries = 0;
  for (const auto& [token, bias] : params.logit_bias) {
    RequireValid(token >= 0 && token < vocab_, "sampling: logit_bias token id " + std::to_string(token) +
                                                   " is outside the vocabulary (size " + std::to_string(vocab_) + ")");
    RequireValid(!std::isnan(bias), "sampling: logit_bias for token " + std::to_string(token) + " is NaN");
    ++max_entries;
  }
  if (params.repetition_penalty != 1.0f && params.repetition_window > 0) {
    window_.resize(params.repetition_window);
    max_entries += params.repetition_window;
  }
  if (params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) {
    counts_.assign(vocab_, 0);
    const size_t distinct = std::min(vocab_, std::max(max_generated, 16));
    distinct_.reserve(distinct);
    max_entries += distinct;
  }
  if (max_entries > 0) {
    adjust_.reserve(std::min<size_t>(max_entries, vocab_));
    slot_.assign(vocab_, -1);
  }
  if (params.seed) {
    rng_.seed(*params.seed);
  } else {
    std::random_device rd;
    rng_.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
  }
}

void Sampler::AcceptPrompt(std::span<const int32_t> prompt) {
  if (window_.empty()) return;
  size_t start = prompt.size() > window_.size() ? prompt.size() - window_.size() : 0;
  for (size_t i = start; i < prompt.size(); ++i) {
    window_[window_pos_] = prompt[i];
    window_pos_ = (window_pos_ + 1) % window_.size();
    window_fill_ = std::min(window_fill_ + 1, window_.size());
  }
}

void Sampler::Accept(int32_t token) {
  if (token < 0 || token >= vocab_) return;
  if (!window_.empty()) {
    window_[window_pos_] = token;
    window_pos_ = (window_pos_ + 1) % window_.size();
    window_fill_ = std::min(window_fill_ + 1, window_.size());
  }
  if (!counts_.empty()) {
    if (counts_[token]++ == 0) distinct_.push_back(token);
  }
}

double Sampler::NextUniform() {
  // 53 random bits -> a double in [0, 1), exactly reproducible.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

backend::TokenAdjust& Sampler::Entry(int32_t token) {
  if (slot_[token] < 0) {
    slot_[token] = static_cast<int32_t>(adjust_.size());
    adjust_.push_back({token, 0.0f, 0.0f, 0});
  }
  return adjust_[slot_[token]];
}

void Sampler::Prepare(backend::SampleRow* row, std::span<const uint8_t> allowed) {
  adjust_.clear();
  if (!slot_.empty()) {
    for (const auto& [token, bias] : params_.logit_bias) Entry(token).bias += bias;
    for (size_t i = 0; i < window_fill_; ++i) {
      const int32_t t = window_[i];
      if (t >= 0 && t < vocab_) Entry(t).repeat = 1;
    }
    for (int32_t t : distinct_)
      Entry(t).subtract = params_.presence_penalty + params_.frequency_penalty * static_cast<float>(counts_[t]);
    for (const backend::TokenAdjust& a : adjust_) slot_[a.token] = -1;
  }
  row->params.temperature = params_.temperature;
  row->params.top_k = params_.top_k;
  row->params.top_p = params_.top_p;
  if (params_.top_p == 0.0f) {  // the smallest nucleus: the most probable token alone, on every backend
    row->params.top_k = 1;
    row->params.top_p = 1.0f;
  }
  row->params.min_p = params_.min_p;
  row->params.repetition_penalty = params_.repetition_penalty;
  row->params.top_logprobs = params_.top_logprobs;
  row->adjust = adjust_;
  row->allowed = allowed;
  row->u = params_.temperature > 0.0f ? NextUniform() : 0.0;
}

int32_t Sampler::Sample(std::span<const float> logits, TokenOut* out, std::span<const uint8_t> allowed) {
  if (static_cast<int>(logits.size()) != vocab_) {
    throw Error("sampler: logits row has " + std::to_string(logits.size()) + " entries, vocabulary has " +
                std::to_string(vocab_));
  }
  if (!allowed.empty() && static_cast<int>(allowed.size()) != vocab_)
    throw Error("sampler: mask size differs from the vocabulary");
  if (!host_) host_ = std::make_unique<backend::HostSampler>(vocab_);
  backend::SampleRow row;
  Prepare(&row, allowed);
  host_->Sample(logits, row, &result_);
  ToTokenOut(result_, out);
  return out->id;
}

void Sampler::ToTokenOut(const backend::SampleResult& r, TokenOut* out) {
  out->id = r.id;
  out->logprob = r.logprob;
  out->top.clear();
  for (int i = 0; i < r.n_top; ++i) out->top.emplace_back(r.top_ids[i], r.top_logprobs[i]);
}

}  // namespace pensieve::engine

#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "util/error.h"

namespace pensieve::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Tokens whose (temperature-scaled) logit is this far below the maximum have relative probability
// < e^-40 (4e-18); even 10^6 of them weigh less than float rounding of the kept mass, so they are dropped
// before sorting. This keeps top-p over a 150k vocabulary from sorting the whole row.
constexpr float kNegligibleLogitGap = 40.0f;
constexpr int kMaxTopLogprobs = 20;
// top-p: candidate sets up to this size are simply sorted; larger ones are bucketed first.
constexpr size_t kSortDirectly = 2048;

}  // namespace

Sampler::Sampler(const SamplingParams& params, int vocab_size, int max_generated)
    : params_(params), vocab_(vocab_size) {
  Require(vocab_size > 0, "sampler: vocab_size must be positive, got " + std::to_string(vocab_size));
  Require(std::isfinite(params.temperature) && params.temperature >= 0.0f,
          "sampling: temperature must be >= 0, got " + std::to_string(params.temperature));
  Require(params.top_k >= 0, "sampling: top_k must be >= 0, got " + std::to_string(params.top_k));
  Require(params.top_p > 0.0f && params.top_p <= 1.0f,
          "sampling: top_p must be in (0, 1], got " + std::to_string(params.top_p));
  Require(params.min_p >= 0.0f && params.min_p <= 1.0f,
          "sampling: min_p must be in [0, 1], got " + std::to_string(params.min_p));
  Require(std::isfinite(params.repetition_penalty) && params.repetition_penalty > 0.0f,
          "sampling: repetition_penalty must be > 0, got " + std::to_string(params.repetition_penalty));
  Require(params.repetition_window >= 0,
          "sampling: repetition_window must be >= 0, got " + std::to_string(params.repetition_window));
  Require(std::isfinite(params.presence_penalty) && std::isfinite(params.frequency_penalty),
          "sampling: presence_penalty and frequency_penalty must be finite");
  Require(params.top_logprobs >= 0 && params.top_logprobs <= kMaxTopLogprobs,
          "sampling: top_logprobs must be in [0, 20], got " + std::to_string(params.top_logprobs));

  work_.resize(vocab_);
  cand_.resize(vocab_);
  probs_.resize(vocab_);
  if (params.top_p < 1.0f) bucket_mass_.resize(kBuckets);
  if (!params.logit_bias.empty()) {
    bias_.assign(vocab_, 0.0f);
    for (const auto& [token, bias] : params.logit_bias) {
      Require(token >= 0 && token < vocab_, "sampling: logit_bias token id " + std::to_string(token) +
                                                " is outside the vocabulary (size " + std::to_string(vocab_) +
                                                ")");
      Require(!std::isnan(bias), "sampling: logit_bias for token " + std::to_string(token) + " is NaN");
      bias_[token] += bias;
    }
  }
  if (params.repetition_penalty != 1.0f && params.repetition_window > 0) {
    window_.resize(params.repetition_window);
    mark_.assign(vocab_, 0);
  }
  if (params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) {
    counts_.assign(vocab_, 0);
    distinct_.reserve(std::min(vocab_, std::max(max_generated, 16)));
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

void Sampler::ApplyPenalties() {
  if (!bias_.empty()) {
    for (int i = 0; i < vocab_; ++i) work_[i] += bias_[i];
  }
  if (window_fill_ > 0) {
    const float penalty = params_.repetition_penalty;
    // Each distinct token in the window is penalised once, however often it occurs (HF semantics).
    for (size_t i = 0; i < window_fill_; ++i) {
      int32_t t = window_[i];
      if (t < 0 || t >= vocab_ || mark_[t]) continue;
      mark_[t] = 1;
      float& l = work_[t];
      l = l > 0.0f ? l / penalty : l * penalty;
    }
    for (size_t i = 0; i < window_fill_; ++i) {
      int32_t t = window_[i];
      if (t >= 0 && t < vocab_) mark_[t] = 0;
    }
  }
  for (int32_t t : distinct_) {
    work_[t] -= params_.presence_penalty + params_.frequency_penalty * static_cast<float>(counts_[t]);
  }
  for (float& l : work_) {
    if (std::isnan(l)) l = kNegInf;
  }
}

double Sampler::NextUniform() {
  // 53 random bits -> a double in [0, 1), exactly reproducible.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

int32_t Sampler::SampleGreedy(TokenOut* out) {
  int32_t best = 0;
  for (int i = 1; i < vocab_; ++i) {
    if (work_[i] > work_[best]) best = i;  // ties: lowest id wins
  }
  out->id = best;
  out->top.clear();
  const float max = work_[best];
  if (!std::isfinite(max)) {  // everything masked: report the token with logprob 0
    out->logprob = 0.0f;
    return best;
  }
  double sum = 0.0;
  for (int i = 0; i < vocab_; ++i) sum += std::exp(work_[i] - max);  // float exp: 2-3x cheaper than double
  const double log_z = std::log(sum);
  out->logprob = static_cast<float>(-log_z);
  const int n = std::min(params_.top_logprobs, vocab_);
  if (n > 0) {
    std::iota(cand_.begin(), cand_.end(), 0);
    std::partial_sort(cand_.begin(), cand_.begin() + n, cand_.end(), [&](int32_t a, int32_t b) {
      return work_[a] > work_[b] || (work_[a] == work_[b] && a < b);
    });
    for (int i = 0; i < n; ++i) {
      out->top.emplace_back(cand_[i], static_cast<float>(work_[cand_[i]] - max - log_z));
    }
  }
  return best;
}

int32_t Sampler::Sample(std::span<const float> logits, TokenOut* out, std::span<const uint8_t> allowed) {
  if (static_cast<int>(logits.size()) != vocab_) {
    throw Error("sampler: logits row has " + std::to_string(logits.size()) + " entries, vocabulary has " +
                std::to_string(vocab_));
  }
  std::copy(logits.begin(), logits.end(), work_.begin());
  if (!allowed.empty()) {
    if (static_cast<int>(allowed.size()) != vocab_) throw Error("sampler: mask size differs from the vocabulary");
    for (int i = 0; i < vocab_; ++i) {
      if (!allowed[i]) work_[i] = kNegInf;
    }
  }
  ApplyPenalties();
  if (params_.temperature == 0.0f) return SampleGreedy(out);

  const float inv_t = 1.0f / params_.temperature;
  float max = kNegInf;
  for (float& l : work_) {
    l *= inv_t;
    max = std::max(max, l);
  }
  if (!std::isfinite(max)) return SampleGreedy(out);  // all masked (or +inf): nothing to draw from

  // Candidates: everything not negligible.
  size_t n = 0;
  const float floor = max - kNegligibleLogitGap;
  for (int i = 0; i < vocab_; ++i) {
    if (work_[i] >= floor) cand_[n++] = i;
  }
  auto better = [&](int32_t a, int32_t b) { return work_[a] > work_[b] || (work_[a] == work_[b] && a < b); };
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    std::nth_element(cand_.begin(), cand_.begin() + params_.top_k, cand_.begin() + n, better);
    n = params_.top_k;
  }
  // Relative probabilities (the best token has 1), stored by token id so candidates can be reordered freely.
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    float p = std::exp(work_[cand_[i]] - max);
    probs_[cand_[i]] = p;
    total += p;
  }
  size_t sorted = 0;  // cand_[0, sorted) is in descending order
  if (params_.top_p < 1.0f) {
    const double target = static_cast<double>(params_.top_p) * total;
    size_t m = n;
    if (n > kSortDirectly) {
      // Bucket the candidates by logit distance from the max; the mass of the top buckets tells which bucket
      // the nucleus ends in, so only the tokens down to that bucket need sorting (usually a small fraction).
      std::fill(bucket_mass_.begin(), bucket_mass_.end(), 0.0);
      const float scale = static_cast<float>(kBuckets) / kNegligibleLogitGap;
      auto bucket = [&](int32_t t) { return std::min(kBuckets - 1, static_cast<int>((max - work_[t]) * scale)); };
      for (size_t i = 0; i < n; ++i) bucket_mass_[bucket(cand_[i])] += probs_[cand_[i]];
      int last = kBuckets - 1;
      double cum = 0.0;
      for (int b = 0; b < kBuckets; ++b) {
        cum += bucket_mass_[b];
        if (cum >= target) {
          last = b;
          break;
        }
      }
      m = std::partition(cand_.begin(), cand_.begin() + n, [&](int32_t t) { return bucket(t) <= last; }) -
          cand_.begin();
    }
    std::sort(cand_.begin(), cand_.begin() + m, better);
    sorted = m;
    double cum = 0.0;
    size_t keep = 0;
    for (size_t i = 0; i < m; ++i) {
      cum += probs_[cand_[i]];
      if (cum >= target) {
        keep = i + 1;
        break;
      }
    }
    if (keep == 0) {  // rounding left the sum a hair under target: keep everything
      keep = n;
      for (size_t i = m; i < n; ++i) cum += probs_[cand_[i]];
    }
    n = keep;
    total = cum;
  }
  if (params_.min_p > 0.0f) {
    // The best token survives top-k and top-p, so its relative probability 1 is the max. Compaction keeps
    // order, and survivors are the most probable tokens, so a sorted prefix stays a sorted prefix.
    size_t kept = 0, kept_sorted = 0;
    total = 0.0;
    for (size_t i = 0; i < n; ++i) {
      if (probs_[cand_[i]] >= params_.min_p) {
        if (i < sorted) ++kept_sorted;
        cand_[kept++] = cand_[i];
        total += probs_[cand_[i]];
      }
    }
    n = kept;
    sorted = kept_sorted;
  }
  const size_t n_top = std::min(static_cast<size_t>(params_.top_logprobs), n);
  if (n_top > sorted) std::partial_sort(cand_.begin(), cand_.begin() + n_top, cand_.begin() + n, better);

  const double u = NextUniform() * total;
  double cum = 0.0;
  size_t pick = n - 1;  // guards against rounding leaving u just above the final cumulative sum
  for (size_t i = 0; i < n; ++i) {
    cum += probs_[cand_[i]];
    if (u < cum) {
      pick = i;
      break;
    }
  }
  const double log_total = std::log(total);
  out->id = cand_[pick];
  out->logprob = static_cast<float>(std::log(static_cast<double>(probs_[out->id])) - log_total);
  out->top.clear();
  for (size_t i = 0; i < n_top; ++i) {
    out->top.emplace_back(cand_[i], static_cast<float>(std::log(static_cast<double>(probs_[cand_[i]])) - log_total));
  }
  return out->id;
}

}  // namespace pensieve::engine

#include "backend/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace pensieve::backend {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Tokens this far below the maximum (temperature-scaled) have relative probability < e^-40 (4e-18); even 10^6
// of them weigh less than float rounding of the kept mass. Dropping them first keeps top-p over a 150k
// vocabulary from sorting the whole row.
constexpr float kNegligibleLogitGap = 40.0f;
// top-p: candidate sets up to this size are simply sorted; larger ones are bucketed first.
constexpr size_t kSortDirectly = 2048;
constexpr int kBuckets = 4096;
// The draw walks kept tokens in id order: up to this many are sorted, more are found by a scan of the row.
constexpr size_t kSortForDraw = 4096;

}  // namespace

HostSampler::HostSampler(int vocab, ExpSumFn exp_sum)
    : vocab_(vocab),
      exp_sum_(exp_sum),
      work_(vocab),
      cand_(vocab),
      probs_(vocab),
      bucket_mass_(kBuckets),
      kept_(vocab) {}

void HostSampler::Greedy(const SampleParams& p, SampleResult* out) {
  int32_t best = 0;
  for (int i = 1; i < vocab_; ++i) {
    if (work_[i] > work_[best]) best = i;  // ties: lowest id wins
  }
  out->id = best;
  out->n_top = 0;
  const float max = work_[best];
  if (!std::isfinite(max)) {  // everything removed: the token with logprob 0
    out->logprob = 0.0f;
    return;
  }
  double sum = 0.0;
  if (exp_sum_) {
    sum = exp_sum_(work_.data(), vocab_, max);
  } else {
    for (int i = 0; i < vocab_; ++i) sum += std::exp(work_[i] - max);  // float exp: 2-3x cheaper than double
  }
  const double log_z = std::log(sum);
  out->logprob = static_cast<float>(-log_z);
  const int n = std::min(std::min(p.top_logprobs, kMaxTopLogprobs), vocab_);
  if (n > 0) {
    std::iota(cand_.begin(), cand_.end(), 0);
    std::partial_sort(cand_.begin(), cand_.begin() + n, cand_.end(), [&](int32_t a, int32_t b) {
      return work_[a] > work_[b] || (work_[a] == work_[b] && a < b);
    });
    for (int i = 0; i < n; ++i) {
      out->top_ids[i] = cand_[i];
      out->top_logprobs[i] = static_cast<float>(work_[cand_[i]] - max - log_z);
    }
    out->n_top = n;
  }
}

void HostSampler::Sample(std::span<const float> logits, const SampleRow& row, SampleResult* out) {
  const SampleParams& p = row.params;
  std::copy(logits.begin(), logits.begin() + vocab_, work_.begin());
  if (!row.allowed.empty()) {
    for (int i = 0; i < vocab_; ++i) {
      if (!row.allowed[i]) work_[i] = kNegInf;
    }
  }
  for (const TokenAdjust& a : row.adjust) {
    float l = work_[a.token] + a.bias;
    if (a.repeat) l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    work_[a.token] = l - a.subtract;
  }
  for (float& l : work_) {
    if (std::isnan(l)) l = kNegInf;
  }
  if (p.temperature == 0.0f) return Greedy(p, out);

  const float inv_t = 1.0f / p.temperature;
  float max = kNegInf;
  for (float& l : work_) {
    l *= inv_t;
    max = std::max(max, l);
  }
  if (!std::isfinite(max)) return Greedy(p, out);  // all removed (or +inf): nothing to draw from

  // Candidates: everything not negligible, in id order.
  size_t n = 0;
  const float floor = max - kNegligibleLogitGap;
  for (int i = 0; i < vocab_; ++i) {
    if (work_[i] >= floor) cand_[n++] = i;
  }
  bool id_order = true;
  auto better = [&](int32_t a, int32_t b) { return work_[a] > work_[b] || (work_[a] == work_[b] && a < b); };
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    std::nth_element(cand_.begin(), cand_.begin() + p.top_k, cand_.begin() + n, better);
    n = p.top_k;
    id_order = false;
  }
  // Relative probabilities (the best token has 1), stored by token id so candidates can be reordered freely.
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    float q = std::exp(work_[cand_[i]] - max);
    probs_[cand_[i]] = q;
    total += q;
  }
  size_t sorted = 0;  // cand_[0, sorted) is in descending order
  if (p.top_p < 1.0f) {
    const double target = static_cast<double>(p.top_p) * total;
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
    id_order = false;
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
  if (p.min_p > 0.0f) {
    // The best token survives top-k and top-p, so its relative probability 1 is the max. Compaction keeps
    // order, and survivors are the most probable tokens, so a sorted prefix stays a sorted prefix.
    size_t kept = 0, kept_sorted = 0;
    total = 0.0;
    for (size_t i = 0; i < n; ++i) {
      if (probs_[cand_[i]] >= p.min_p) {
        if (i < sorted) ++kept_sorted;
        cand_[kept++] = cand_[i];
        total += probs_[cand_[i]];
      }
    }
    n = kept;
    sorted = kept_sorted;
  }
  const double log_total = std::log(total);
  const size_t n_top = std::min(static_cast<size_t>(std::min(p.top_logprobs, kMaxTopLogprobs)), n);
  if (n_top > sorted) {
    std::partial_sort(cand_.begin(), cand_.begin() + n_top, cand_.begin() + n, better);
    id_order = false;
  }
  out->n_top = static_cast<int32_t>(n_top);
  for (size_t i = 0; i < n_top; ++i) {
    out->top_ids[i] = cand_[i];
    out->top_logprobs[i] = static_cast<float>(std::log(static_cast<double>(probs_[cand_[i]])) - log_total);
  }

  // The draw, in ascending id order.
  const double target = row.u * total;
  double cum = 0.0;
  int32_t pick = -1, last = -1;
  auto visit = [&](int32_t t) {
    last = t;
    cum += probs_[t];
    if (pick < 0 && target < cum) pick = t;
  };
  if (id_order) {
    for (size_t i = 0; i < n && pick < 0; ++i) visit(cand_[i]);
    if (pick < 0) last = cand_[n - 1];
  } else if (n <= kSortForDraw) {
    std::sort(cand_.begin(), cand_.begin() + n);
    for (size_t i = 0; i < n && pick < 0; ++i) visit(cand_[i]);
    if (pick < 0) last = cand_[n - 1];
  } else {
    for (size_t i = 0; i < n; ++i) kept_[cand_[i]] = 1;
    for (int32_t t = 0; t < vocab_; ++t) {
      if (kept_[t]) {
        kept_[t] = 0;
        if (pick < 0) visit(t);
        last = t;
      }
    }
  }
  if (pick < 0) pick = last;  // rounding left the target just above the final sum
  out->id = pick;
  out->logprob = static_cast<float>(std::log(static_cast<double>(probs_[pick])) - log_total);
}

}  // namespace pensieve::backend

// Sampler chain: statistical tests against distributions computed here from the definitions (softmax,
// top-k, top-p, min-p), penalties against hand-computed logits, determinism, greedy.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

#include "util/error.h"

namespace pensieve::engine {
namespace {

// Chi-square critical values at significance 0.001, indexed by degrees of freedom (1..9).
constexpr double kChiSquare999[] = {0, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877};

const std::vector<float> kLogits = {1.2f, -0.3f, 2.0f, 0.4f, -1.5f, 0.9f, -0.1f, 1.6f};

std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  std::vector<double> p(logits.size());
  double z = 0;
  for (size_t i = 0; i < logits.size(); ++i) z += p[i] = std::exp(logits[i] / temperature);
  for (double& x : p) x /= z;
  return p;
}

std::vector<double> Renormalize(std::vector<double> p) {
  double z = std::accumulate(p.begin(), p.end(), 0.0);
  for (double& x : p) x /= z;
  return p;
}

// Draws n tokens and checks the histogram against `expected` (probabilities summing to 1): tokens with
// expected probability 0 must never appear; the rest pass a chi-square test at the 0.001 level.
void ExpectDistribution(const SamplingParams& params, const std::vector<float>& logits,
                        const std::vector<double>& expected, int n = 20000) {
  Sampler sampler(params, static_cast<int>(logits.size()));
  std::vector<int> hist(logits.size(), 0);
  TokenOut out;
  for (int i = 0; i < n; ++i) ++hist[sampler.Sample(logits, &out)];
  double chi2 = 0;
  int categories = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (expected[i] == 0) {
      EXPECT_EQ(hist[i], 0) << "token " << i << " should have been cut";
      continue;
    }
    double e = expected[i] * n;
    ASSERT_GE(e, 5.0) << "test setup: expected count too small for chi-square at token " << i;
    chi2 += (hist[i] - e) * (hist[i] - e) / e;
    ++categories;
  }
  ASSERT_GE(categories, 2);
  ASSERT_LE(categories - 1, 9);
  EXPECT_LT(chi2, kChiSquare999[categories - 1]) << "histogram does not match the expected distribution";
}

SamplingParams Seeded(uint64_t seed) {
  SamplingParams p;
  p.seed = seed;
  return p;
}

TEST(SamplerTest, TemperatureOneIsSoftmax) {
  ExpectDistribution(Seeded(1), kLogits, Softmax(kLogits, 1.0));
}

TEST(SamplerTest, TemperatureScalesLogits) {
  SamplingParams p = Seeded(2);
  p.temperature = 0.6f;
  ExpectDistribution(p, kLogits, Softmax(kLogits, 0.6));
  p.temperature = 1.8f;
  ExpectDistribution(p, kLogits, Softmax(kLogits, 1.8));
}

TEST(SamplerTest, TopKKeepsTheKBest) {
  SamplingParams p = Seeded(3);
  p.top_k = 3;
  // The three largest logits are tokens 2 (2.0), 7 (1.6), 0 (1.2).
  std::vector<double> e = Softmax(kLogits, 1.0);
  for (int i : {1, 3, 4, 5, 6}) e[i] = 0;
  ExpectDistribution(p, kLogits, Renormalize(e));
}

TEST(SamplerTest, TopPKeepsSmallestPrefixReachingP) {
  SamplingParams p = Seeded(4);
  p.top_p = 0.7f;
  std::vector<double> full = Softmax(kLogits, 1.0);
  // Sorted by probability: 2, 7, 0, 5, 3, -0.1(6), -0.3(1), -1.5(4). Mass of {2,7,0} from the definition:
  double m3 = full[2] + full[7] + full[0];
  double m2 = full[2] + full[7];
  ASSERT_LT(m2, 0.7);   // two are not enough ...
  ASSERT_GE(m3, 0.7);   // ... three are: the nucleus is {2, 7, 0}
  std::vector<double> e(kLogits.size(), 0.0);
  for (int i : {2, 7, 0}) e[i] = full[i];
  ExpectDistribution(p, kLogits, Renormalize(e));
}

TEST(SamplerTest, TopPZeroKeepsOnlyTheMostProbableToken) {
  // The APIs accept top_p in [0, 1]; 0 is the smallest nucleus there is: the best token alone (token 2, 2.0).
  SamplingParams p = Seeded(9);
  p.top_p = 0.0f;
  p.top_logprobs = 2;
  Sampler sampler(p, static_cast<int>(kLogits.size()));
  TokenOut out;
  for (int i = 0; i < 2000; ++i) {
    ASSERT_EQ(sampler.Sample(kLogits, &out), 2);
    ASSERT_EQ(out.logprob, 0.0f);  // drawn from a one-token distribution
  }
}

TEST(SamplerTest, MinPIsRelativeToTheMaximum) {
  SamplingParams p = Seeded(5);
  p.min_p = 0.3f;
  std::vector<double> full = Softmax(kLogits, 1.0);
  double pmax = *std::max_element(full.begin(), full.end());
  std::vector<double> e(kLogits.size(), 0.0);
  int kept = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    if (full[i] >= 0.3 * pmax) {
      e[i] = full[i];
      ++kept;
    }
  }
  ASSERT_EQ(kept, 4);  // exp(l - 2.0) >= 0.3  <=>  l >= 2.0 + ln 0.3 = 0.796: tokens 2, 7, 0, 5
  ExpectDistribution(p, kLogits, Renormalize(e));
}

TEST(SamplerTest, ChainAppliesTemperatureThenTopKThenTopPThenMinP) {
  SamplingParams p = Seeded(6);
  p.temperature = 2.0f;
  p.top_k = 6;
  p.top_p = 0.9f;
  p.min_p = 0.5f;
  std::vector<double> t = Softmax(kLogits, 2.0);
  std::vector<int> order(kLogits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return kLogits[a] > kLogits[b]; });
  std::vector<double> e(kLogits.size(), 0.0);
  for (int r = 0; r < 6; ++r) e[order[r]] = t[order[r]];  // top-k
  e = Renormalize(e);
  double cum = 0;
  bool reached = false;
  for (int r = 0; r < 6; ++r) {  // top-p on the renormalised top-k distribution
    if (reached) e[order[r]] = 0;
    cum += e[order[r]];
    if (cum >= 0.9) reached = true;
  }
  e = Renormalize(e);
  double pmax = e[order[0]];
  for (double& x : e) {
    if (x < 0.5 * pmax) x = 0;  // min-p
  }
  e = Renormalize(e);
  ExpectDistribution(p, kLogits, e);
}

TEST(SamplerTest, GreedyIsArgmax) {
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler s(p, 8);
  TokenOut out;
  EXPECT_EQ(s.Sample(kLogits, &out), 2);
  std::vector<float> other = {0.1f, 0.2f, -3.0f, 7.5f, 7.4f, 0.0f, 1.0f, 2.0f};
  EXPECT_EQ(s.Sample(other, &out), 3);
  // Greedy ignores the seed and any randomness: always the same.
  for (int i = 0; i < 100; ++i) ASSERT_EQ(s.Sample(other, &out), 3);
}

TEST(SamplerTest, SameSeedSameTokens) {
  SamplingParams p = Seeded(12345);
  p.temperature = 1.3f;
  p.top_p = 0.95f;
  Sampler a(p, 8), b(p, 8);
  p.seed = 54321;
  Sampler c(p, 8);
  std::vector<float> logits = kLogits;
  TokenOut out;
  int differ = 0;
  for (int step = 0; step < 500; ++step) {
    // A logits sequence that changes from step to step.
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = kLogits[(i + step) % kLogits.size()];
    int32_t ta = a.Sample(logits, &out);
    int32_t tb = b.Sample(logits, &out);
    int32_t tc = c.Sample(logits, &out);
    ASSERT_EQ(ta, tb) << "step " << step;
    differ += ta != tc;
  }
  EXPECT_GT(differ, 50) << "a different seed should give a different sequence";
}

TEST(SamplerTest, UnseededSamplersDiffer) {
  SamplingParams p;
  Sampler a(p, 8), b(p, 8);
  TokenOut out;
  int differ = 0;
  for (int i = 0; i < 200; ++i) differ += a.Sample(kLogits, &out) != b.Sample(kLogits, &out);
  EXPECT_GT(differ, 20);
}

// Reads the penalised logits back through greedy logprobs: at temperature 0 they are the log-softmax of the
// penalised logits, so logprob[i] - logprob[j] == penalised[i] - penalised[j].
std::vector<double> PenalisedDifferences(Sampler& s, const std::vector<float>& logits) {
  TokenOut out;
  s.Sample(logits, &out);
  std::vector<double> lp(logits.size(), NAN);
  for (auto [id, v] : out.top) lp[id] = v;
  std::vector<double> diff(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) diff[i] = lp[i] - lp[0];
  return diff;
}

void ExpectPenalised(Sampler& s, const std::vector<float>& logits, const std::vector<double>& want) {
  std::vector<double> got = PenalisedDifferences(s, logits);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i], want[i] - want[0], 1e-4) << "token " << i;
  }
}

TEST(SamplerTest, RepetitionPenaltyOverWindowDividesPositiveMultipliesNegative) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  p.repetition_window = 3;
  p.top_logprobs = 6;
  const std::vector<float> logits = {0.5f, 3.0f, -1.0f, 2.0f, -0.5f, 1.0f};
  Sampler s(p, 6);
  // Prompt 4 1 2 2 5: only the last three (2, 2, 5) are in the window; 2 counts once.
  std::vector<int32_t> prompt = {4, 1, 2, 2, 5};
  s.AcceptPrompt(prompt);
  ExpectPenalised(s, logits, {0.5, 3.0, -2.0, 2.0, -0.5, 0.5});
  s.Accept(1);  // window now 2, 5, 1
  ExpectPenalised(s, logits, {0.5, 1.5, -2.0, 2.0, -0.5, 0.5});
  s.Accept(3);  // window 5, 1, 3
  ExpectPenalised(s, logits, {0.5, 1.5, -1.0, 1.0, -0.5, 0.5});
}

TEST(SamplerTest, PresenceAndFrequencyPenaltiesCountGeneratedTokensOnly) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  p.top_logprobs = 5;
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, -1.0f, 0.0f};
  Sampler s(p, 5);
  std::vector<int32_t> prompt = {1, 1, 1};
  s.AcceptPrompt(prompt);  // the prompt does not count
  ExpectPenalised(s, logits, {1.0, 2.0, 3.0, -1.0, 0.0});
  for (int32_t t : {2, 2, 2, 3}) s.Accept(t);
  // token 2: 3 - 0.5 - 3*0.25 = 1.75; token 3: -1 - 0.5 - 0.25 = -1.75
  ExpectPenalised(s, logits, {1.0, 2.0, 1.75, -1.75, 0.0});
}

TEST(SamplerTest, LogitBiasAddsBeforePenalties) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logit_bias = {{0, 5.0f}, {3, -100.0f}};
  p.repetition_penalty = 2.0f;
  p.repetition_window = 4;
  p.top_logprobs = 4;
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 0.5f};
  Sampler s(p, 4);
  s.Accept(0);
  // token 0: (1 + 5) / 2 = 3 (bias first, then the penalty); token 3: 0.5 - 100
  ExpectPenalised(s, logits, {3.0, 2.0, 3.0, -99.5});
  TokenOut out;
  EXPECT_EQ(s.Sample(logits, &out), 0);  // tie 3.0 vs 3.0: the lowest id
}

TEST(SamplerTest, LogprobsAreThoseOfTheTruncatedDistribution) {
  SamplingParams p = Seeded(7);
  p.top_k = 2;
  p.top_logprobs = 3;  // only two survive top-k
  Sampler s(p, 8);
  TokenOut out;
  s.Sample(kLogits, &out);
  // Survivors: tokens 2 (2.0) and 7 (1.6).
  double z = std::log(std::exp(2.0) + std::exp(1.6));
  ASSERT_EQ(out.top.size(), 2u);
  EXPECT_EQ(out.top[0].first, 2);
  EXPECT_NEAR(out.top[0].second, 2.0 - z, 1e-5);
  EXPECT_EQ(out.top[1].first, 7);
  EXPECT_NEAR(out.top[1].second, 1.6 - z, 1e-5);
  EXPECT_NEAR(out.logprob, kLogits[out.id] - z, 1e-5);
}

TEST(SamplerTest, LargeVocabularyTopPMatchesDefinition) {
  // 20k tokens with a few large logits: checks the negligible-tail shortcut does not change the nucleus.
  std::vector<float> logits(20000, -5.0f);
  logits[10] = 12.0f;
  logits[20] = 11.5f;
  logits[30] = 11.0f;
  std::vector<double> full = Softmax(logits, 1.0);
  SamplingParams p = Seeded(8);
  p.top_p = 0.6f;
  // Mass of token 10 alone and of {10, 20}, from the definition.
  ASSERT_LT(full[10], 0.6);
  ASSERT_GE(full[10] + full[20], 0.6);
  std::vector<double> e(logits.size(), 0.0);
  e[10] = full[10];
  e[20] = full[20];
  e = Renormalize(e);
  Sampler s(p, 20000);
  TokenOut out;
  int n10 = 0, n20 = 0, other = 0;
  const int n = 10000;
  for (int i = 0; i < n; ++i) {
    int32_t t = s.Sample(logits, &out);
    n10 += t == 10;
    n20 += t == 20;
    other += t != 10 && t != 20;
  }
  EXPECT_EQ(other, 0);
  double chi2 = std::pow(n10 - e[10] * n, 2) / (e[10] * n) + std::pow(n20 - e[20] * n, 2) / (e[20] * n);
  EXPECT_LT(chi2, kChiSquare999[1]);
}

TEST(SamplerTest, TopPOnAFlatLargeDistributionKeepsExactlyTheNucleus) {
  // 5000 tokens with many close logits: the nucleus holds hundreds of tokens, so the bucketed selection
  // path is used. Every draw must come from the nucleus computed here by sorting, and its logprob must be
  // the logit minus the log of the nucleus mass, which only holds if the cut is exactly at the right token.
  const int V = 5000;
  std::vector<float> logits(V);
  for (int i = 0; i < V; ++i) logits[i] = 3.0f * std::sin(i * 0.37f) + 0.1f * (i % 7);
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  std::vector<bool> in_nucleus(V, false);
  double mass = 0, cum = 0;
  size_t size = 0;
  for (int t : order) {
    cum += std::exp(static_cast<double>(logits[t])) / z;
    mass += std::exp(static_cast<double>(logits[t]));
    in_nucleus[t] = true;
    ++size;
    if (cum >= 0.6) break;
  }
  ASSERT_GT(size, 100u);
  const double log_mass = std::log(mass);
  SamplingParams p = Seeded(11);
  p.top_p = 0.6f;
  Sampler s(p, V);
  TokenOut out;
  std::set<int> seen;
  for (int i = 0; i < 3000; ++i) {
    int32_t t = s.Sample(logits, &out);
    ASSERT_TRUE(in_nucleus[t]) << "token " << t << " is outside the nucleus";
    ASSERT_NEAR(out.logprob, logits[t] - log_mass, 2e-4);
    seen.insert(t);
  }
  EXPECT_GT(seen.size(), 50u);
}

TEST(SamplerTest, RejectsBadParameters) {
  auto make = [](auto edit) {
    SamplingParams p;
    edit(p);
    Sampler s(p, 10);
  };
  // The request is at fault: BadRequest, which the server answers with 400.
  EXPECT_THROW(make([](SamplingParams& p) { p.temperature = -1; }), BadRequest);
  EXPECT_THROW(make([](SamplingParams& p) { p.top_p = -0.1f; }), BadRequest);
  EXPECT_THROW(make([](SamplingParams& p) { p.top_p = 1.5f; }), BadRequest);
  EXPECT_THROW(make([](SamplingParams& p) { p.min_p = -0.1f; }), BadRequest);
  EXPECT_THROW(make([](SamplingParams& p) { p.top_k = -2; }), BadRequest);
  EXPECT_THROW(make([](SamplingParams& p) { p.repetition_penalty = 0; }), BadRequest);
  EXPECT_THROW(make([](SamplingParams& p) { p.logit_bias = {{10, 1.0f}}; }), BadRequest);
  EXPECT_THROW(make([](SamplingParams& p) { p.top_logprobs = 21; }), BadRequest);
  EXPECT_NO_THROW(make([](SamplingParams& p) { p.top_p = 0.0f; }));
  SamplingParams ok;
  Sampler s(ok, 10);
  std::vector<float> wrong(9, 0.0f);
  TokenOut out;
  EXPECT_THROW(s.Sample(wrong, &out), Error);
}

}  // namespace
}  // namespace pensieve::engine

// The GPU sampler against the host sampler (backend/sampling.h, itself tested against the definitions in
// tests/engine/sampler_test.cpp): the same rows, parameters, adjustments, masks and uniform numbers must give
// the same token, logprob and alternatives. Rows cover greedy with alternatives, every truncation alone and
// together, ties, NaN and -inf logits, masks that remove everything, and a 152k vocabulary whose flat tail
// makes top-p keep tens of thousands of tokens. Skips without a usable GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/sampling.h"

namespace pensieve::backend {
namespace {

struct RowData {
  std::vector<TokenAdjust> adjust;
  std::vector<uint8_t> allowed;
};

TEST(CudaSamplerTest, SameTokensAsTheHostChain) {
  const cuda::GpuStatus s = cuda::Probe();
  if (!s.usable) GTEST_SKIP() << "no usable GPU: " << s.reason;
  auto be = cuda::MakeCudaBackend({});
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  int mismatches = 0, total = 0;
  for (int64_t vocab : {1000, 152064}) {
    constexpr int kRows = 8;
    ScratchSpec spec;
    spec.max_rows = 8;
    spec.max_cols = 64;
    spec.max_items = 8;
    spec.max_samples = kRows;
    spec.vocab = vocab;
    spec.head_dim = 64;
    be->Reserve(spec);
    HostSampler host(static_cast<int>(vocab));
    auto logits_buf = be->Allocate(kRows * vocab * 4, "logits");
    const Tensor logits = logits_buf->AsTensor(kRows, vocab);
    for (int round = 0; round < 40; ++round) {
      // Logits: normal with a scale that varies per row; a flat tail for some rows; ties and odd values.
      std::vector<float> h(kRows * vocab);
      for (int r = 0; r < kRows; ++r) {
        std::normal_distribution<float> dist(0.0f, 0.5f + r * 0.7f);
        for (int64_t i = 0; i < vocab; ++i) h[r * vocab + i] = r % 3 == 2 ? std::round(dist(rng) * 2) / 2 : dist(rng);
        h[r * vocab + 7] = h[r * vocab + 11];  // an exact tie
        if (r == 5) h[r * vocab + 3] = std::numeric_limits<float>::quiet_NaN();
        if (r == 6) h[r * vocab + 4] = -std::numeric_limits<float>::infinity();
      }
      be->Upload(logits.data, h.data(), kRows * vocab * 4);
      std::vector<RowData> data(kRows);
      std::vector<SampleRow> rows(kRows);
      for (int r = 0; r < kRows; ++r) {
        SampleRow& row = rows[r];
        row.logits_row = (r * 3 + round) % kRows;
        SampleParams& p = row.params;
        const int kind = (round + r) % 8;
        p.temperature = kind == 0 ? 0.0f : static_cast<float>(0.3 + unif(rng) * 1.5);
        p.top_k = kind == 1 || kind == 5 ? 1 + static_cast<int>(unif(rng) * 60) : 0;
        p.top_p = kind == 2 || kind == 5 || kind == 7 ? static_cast<float>(0.05 + unif(rng) * 0.94) : 1.0f;
        p.min_p = kind == 3 || kind == 5 ? static_cast<float>(unif(rng) * 0.2) : 0.0f;
        p.top_logprobs = (round + r) % 4 == 0 ? 5 : (round % 5 == 0 ? 20 : 0);
        p.repetition_penalty = 1.3f;
        if (kind == 4 || kind == 5) {
          for (int i = 0; i < 30; ++i) {
            TokenAdjust a;
            a.token = static_cast<int32_t>(i * 31 % vocab);
            a.bias = i % 3 == 0 ? static_cast<float>(unif(rng) * 4 - 2) : 0.0f;
            a.repeat = i % 2;
            a.subtract = i % 5 == 0 ? 0.7f : 0.0f;
            data[r].adjust.push_back(a);
          }
        }
        if (kind == 6 || (round == 3 && r == 1)) {
          data[r].allowed.assign(vocab, 0);
          const bool none = round == 3 && r == 1;  // everything removed: token 0, logprob 0
          if (!none)
            for (int64_t i = 0; i < vocab; i += 7) data[r].allowed[i] = 1;
        }
        row.adjust = data[r].adjust;
        row.allowed = data[r].allowed;
        row.u = unif(rng);
        if (round % 4 == 3) {  // every fourth round all rows plain greedy: the multi-block greedy kernel
          p = SampleParams{};
          p.temperature = 0.0f;
          data[r] = {};
          row.adjust = {}, row.allowed = {};
        }
      }
      StepPlan plan;
      plan.samples = rows;
      be->SetStep(plan);
      be->Sample(logits);
      std::vector<SampleResult> got(kRows);
      be->TakeSamples(got);
      for (int r = 0; r < kRows; ++r) {
        SampleResult want;
        host.Sample(std::span<const float>(h.data() + rows[r].logits_row * vocab, vocab), rows[r], &want);
        ++total;
        const auto& p = rows[r].params;
        SCOPED_TRACE(testing::Message() << "vocab " << vocab << " round " << round << " row " << r << " t " << p.temperature
                                        << " k " << p.top_k << " p " << p.top_p << " min_p " << p.min_p << " u " << rows[r].u);
        if (got[r].id != want.id) {
          ++mismatches;  // allowed rarely: a draw within float rounding of a boundary
          continue;
        }
        EXPECT_NEAR(got[r].logprob, want.logprob, 1e-4f * (1 + std::fabs(want.logprob)));
        ASSERT_EQ(got[r].n_top, want.n_top);
        for (int i = 0; i < want.n_top; ++i) {
          EXPECT_EQ(got[r].top_ids[i], want.top_ids[i]) << "alternative " << i;
          EXPECT_NEAR(got[r].top_logprobs[i], want.top_logprobs[i], 1e-4f * (1 + std::fabs(want.top_logprobs[i])));
        }
      }
    }
  }
  std::printf("[ sampler  ] %d of %d rows drew a different token from the host chain\n", mismatches, total);
  EXPECT_LE(mismatches, total / 200);
}

}  // namespace
}  // namespace pensieve::backend

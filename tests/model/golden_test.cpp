// Golden numerics against transformers: tests/fixtures/golden (tools/golden/make_golden.py) holds, per case,
// a tiny random model and the logits transformers computed for a prefill and 8 cached decode steps.
// Our logits must be within the case's relative L2 tolerance (1e-4 f32, 1e-2 bf16 / quantized) per row, and
// greedy choices must agree wherever the reference's top-2 margin exceeds 1e-3.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "engine/sequences.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "test_paths.h"

namespace pensieve::model {
namespace {

struct GoldenCase {
  std::string name;
  double tolerance;
};

std::vector<GoldenCase> Cases() {
  std::ifstream in(test::FixturesDir() + "/golden/manifest.json");
  if (!in) return {};
  auto j = nlohmann::json::parse(in);
  std::vector<GoldenCase> out;
  for (const auto& c : j["cases"]) out.push_back({c["name"], c["tolerance"]});
  return out;
}

double RelL2(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) num += (a[i] - b[i]) * double(a[i] - b[i]), den += double(b[i]) * b[i];
  return std::sqrt(num / std::max(den, 1e-30));
}

// Argmax, and the gap between the two largest values.
std::pair<int64_t, double> Top(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  double second = -INFINITY;
  for (int64_t i = 0; i < n; ++i)
    if (i != best) second = std::max(second, double(v[i]));
  return {best, v[best] - second};
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

using RowCheck = std::function<void(const float* got, const float* want, int64_t V, const std::string& where)>;

// The case's prefill (all rows) and its cached decode steps on the CPU backend; `check` sees every logits row.
// The model comes from the case's folder, or from `model` (a GGUF file of the same weights) where given.
void RunCase(const GoldenCase& c, backend::cpu::AffineMath math, const RowCheck& check, const std::string& model = "") {
  const std::string dir = test::FixturesDir() + "/golden/" + c.name;
  TensorStore expected = TensorStore::Open(dir + "/expected.safetensors");
  const TensorView& prompt_t = expected.Get("prompt_ids");
  const TensorView& prefill_t = expected.Get("prefill_logits");
  const TensorView& decode_ids_t = expected.Get("decode_ids");
  const TensorView& decode_t = expected.Get("decode_logits");
  std::vector<int32_t> prompt(prompt_t.as<int32_t>(), prompt_t.as<int32_t>() + prompt_t.numel());
  std::vector<int32_t> decode_ids(decode_ids_t.as<int32_t>(), decode_ids_t.as<int32_t>() + decode_ids_t.numel());

  backend::cpu::CpuBackend be(2, math);
  LoadOptions opts;
  opts.kv_budget_bytes = 16 << 20;
  auto m = Model::Load(model.empty() ? dir : model, be, opts);
  const int64_t V = m->config().vocab_size;
  ASSERT_EQ(prefill_t.dim(1), V);

  engine::Sequences seqs(*m);
  int seq = seqs.New();
  std::vector<float> logits(prompt.size() * V);
  engine::Sequences::Item item{seq, prompt, Logits::kAll};
  seqs.Forward(std::span(&item, 1), logits);
  for (size_t p = 0; p < prompt.size(); ++p)
    check(&logits[p * V], prefill_t.as<float>() + p * V, V, "prefill row " + std::to_string(p));
  std::vector<float> step(V);
  for (size_t i = 0; i < decode_ids.size(); ++i) {
    engine::Sequences::Item it{seq, std::span<const int32_t>(&decode_ids[i], 1)};
    seqs.Forward(std::span(&it, 1), step);
    check(step.data(), decode_t.as<float>() + i * V, V, "decode step " + std::to_string(i));
  }
}

// KL(softmax(want) || softmax(got)) in nats.
double Kl(const float* got, const float* want, int64_t n) {
  const double mw = *std::max_element(want, want + n), mg = *std::max_element(got, got + n);
  double zw = 0, zg = 0;
  for (int64_t i = 0; i < n; ++i) zw += std::exp(want[i] - mw), zg += std::exp(got[i] - mg);
  double kl = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double lw = want[i] - mw - std::log(zw), lg = got[i] - mg - std::log(zg);
    kl += std::exp(lw) * (lw - lg);
  }
  return kl;
}

// The case held to f32 accuracy (the manifest allows 1e-2 for bf16/quantized weights, but the reference used
// the same rounded weights), from its folder or from the GGUF file `model`.
void ExpectTransformersLogits(const GoldenCase& c, const std::string& model = "") {
  double worst = 0;
  RunCase(c, backend::cpu::AffineMath::kFloat, [&](const float* got, const float* want, int64_t V, const std::string& where) {
    const double err = RelL2(got, want, V);
    EXPECT_LE(err, std::min(c.tolerance, 1e-4)) << where;
    auto [want_id, margin] = Top(want, V);
    if (margin > 1e-3) {
      EXPECT_EQ(Top(got, V).first, want_id) << where << " (reference margin " << margin << ")";
    }
    worst = std::max(worst, err);
  }, model);
  ::testing::Test::RecordProperty("worst_rel_l2", std::to_string(worst));
  std::printf("[ golden   ] %-20s%s worst row rel L2 %.3g (manifest tolerance %.0e, enforced %.0e)\n", c.name.c_str(),
              model.empty() ? "" : " (GGUF)", worst, c.tolerance, std::min(c.tolerance, 1e-4));
}

TEST_P(GoldenTest, LogitsMatchTransformers) { ExpectTransformersLogits(GetParam()); }

// The same models as GGUF files written by llama.cpp's converter (tools/gguf/make_arch_fixtures.py): each
// architecture's names, metadata, q/k order and rope tables as the peer writes them must give transformers'
// logits.
std::vector<GoldenCase> GgufCases() {
  std::ifstream in(test::FixturesDir() + "/golden/gguf/manifest.json");
  if (!in) return {};
  std::vector<GoldenCase> out;
  const nlohmann::json manifest = nlohmann::json::parse(in);
  for (const auto& name : manifest["cases"])
    for (const GoldenCase& c : Cases())
      if (c.name == name.get<std::string>()) out.push_back(c);
  return out;
}
class GoldenFromGgufTest : public ::testing::TestWithParam<GoldenCase> {};
TEST_P(GoldenFromGgufTest, LlamaCppConversionGivesTransformersLogits) {
  ExpectTransformersLogits(GetParam(), test::FixturesDir() + "/golden/gguf/" + GetParam().name + ".gguf");
}
TEST(GoldenFromGguf, EveryArchitectureHasAFile) {
  std::vector<std::string> names;
  for (const GoldenCase& c : GgufCases()) names.push_back(c.name);
  for (const char* want : {"llama3_rope", "qwen2", "qwen3", "phi3", "phi3_longrope"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
}

// The integer kernels on the quantized cases: the error they add to the f32 answer, in the metrics issue 11
// holds us to against llama.cpp (top-1 agreement, mean KL), stated and bounded. These tiny random models are
// harsh: near-flat logits, so int8 activations (llama.cpp's arithmetic) flip 2-7 of 36 top-1 choices here,
// measured 2026-12-03; the fine form (two bytes per activation) matches f32 to ~1e-3.
class GoldenInt8Test : public ::testing::TestWithParam<GoldenCase> {};

// The cases with quantized weights (the only ones the integer kernels take).
std::vector<GoldenCase> QuantizedCases() {
  std::vector<GoldenCase> out;
  for (const GoldenCase& c : Cases())
    if (c.name.find("mlx") != std::string::npos) out.push_back(c);
  return out;
}

TEST_P(GoldenInt8Test, Int8KernelsStayNearTransformers) {
  const GoldenCase& c = GetParam();
  if (!backend::cpu::Int8Available()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU (or PENSIEVE_CPU_INT8=0)";
  for (const bool fine : {false, true}) {
    double worst = 0, kl_sum = 0;
    int rows = 0, same = 0;
    RunCase(c, fine ? backend::cpu::AffineMath::kInt8Fine : backend::cpu::AffineMath::kInt8,
            [&](const float* got, const float* want, int64_t V, const std::string& where) {
              worst = std::max(worst, RelL2(got, want, V));
              kl_sum += Kl(got, want, V);
              auto [want_id, margin] = Top(want, V);
              same += Top(got, V).first == want_id;
              if (fine && margin > 1e-2) {
                EXPECT_EQ(Top(got, V).first, want_id) << where << " (margin " << margin << ")";
              }
              ++rows;
            });
    const double mean_kl = kl_sum / rows;
    std::printf("[ golden   ] %-20s %s: worst row rel L2 %.3g, mean KL %.2e, top-1 %d/%d\n", c.name.c_str(),
                fine ? "int8 fine" : "int8     ", worst, mean_kl, same, rows);
    if (fine) {
      EXPECT_LE(worst, 3e-3);
      EXPECT_LE(mean_kl, 1e-5);
    } else {
      EXPECT_LE(worst, 0.25);
      EXPECT_LE(mean_kl, 1e-2);
      EXPECT_GE(same * 4, rows * 3);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenTest);
INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenFromGgufTest, ::testing::ValuesIn(GgufCases()),
                         [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenFromGgufTest);
INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenInt8Test, ::testing::ValuesIn(QuantizedCases()),
                         [](const auto& info) { return info.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenInt8Test);

}  // namespace
}  // namespace pensieve::model

// The golden fixtures (tests/fixtures/golden, written by transformers 5 save_pretrained and by
// tools/golden/make_golden.py's MLX-algorithm quantizer) through our reader, config parser and quantizer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/model_config.h"
#include "formats/quantize_model.h"
#include "formats/random_model.h"
#include "formats/safetensors.h"
#include "temp_dir.h"
#include "test_paths.h"

namespace pensieve {
namespace {

namespace fs = std::filesystem;

std::string GoldenDir() { return test::FixturesDir() + "/golden"; }

std::vector<std::string> GoldenCases() {
  std::ifstream in(GoldenDir() + "/manifest.json");
  if (!in) return {};
  auto m = nlohmann::json::parse(in);
  std::vector<std::string> names;
  for (const auto& c : m["cases"]) names.push_back(c["name"].get<std::string>());
  return names;
}

#define REQUIRE_GOLDEN()                                                         \
  do {                                                                           \
    if (GoldenCases().empty()) GTEST_SKIP() << "tests/fixtures/golden not found"; \
  } while (0)

// Every case loads; its tensors are exactly the HF names and shapes our config implies (quantized modules as
// packed weight + scales + biases).
TEST(Golden, EveryCaseLoadsWithExpectedTensors) {
  REQUIRE_GOLDEN();
  for (const std::string& name : GoldenCases()) {
    SCOPED_TRACE(name);
    std::string dir = GoldenDir() + "/" + name;
    ModelConfig c = LoadModelConfig(dir);
    TensorStore st = TensorStore::Open(dir + "/model.safetensors");
    size_t expected_count = 0;
    for (const TensorSpec& t : HfTensorList(c)) {
      std::string module = t.name.substr(0, t.name.rfind('.'));
      if (c.quantization && st.Has(module + ".scales") && t.name.ends_with(".weight")) {
        QuantSpec q = c.quantization->ForModule(module);
        const TensorView& w = st.Get(t.name);
        EXPECT_EQ(w.dtype, DType::kU32) << t.name;
        EXPECT_EQ(w.shape, (std::vector<int64_t>{t.shape[0], q.PackedCols(t.shape[1])})) << t.name;
        EXPECT_EQ(st.Get(module + ".scales").shape, (std::vector<int64_t>{t.shape[0], q.Groups(t.shape[1])}));
        EXPECT_EQ(st.Get(module + ".biases").shape, (std::vector<int64_t>{t.shape[0], q.Groups(t.shape[1])}));
        expected_count += 3;
      } else {
        const TensorView* v = st.Find(t.name);
        ASSERT_NE(v, nullptr) << t.name;
        EXPECT_EQ(v->shape, t.shape) << t.name;
        ++expected_count;
      }
    }
    EXPECT_EQ(st.size(), expected_count);
  }
}

// The features each case is named for reach the config.
TEST(Golden, CaseFeatures) {
  REQUIRE_GOLDEN();
  auto load = [](const char* n) { return LoadModelConfig(GoldenDir() + "/" + n); };
  EXPECT_TRUE(load("llama_tied").tie_word_embeddings);
  ModelConfig l3 = load("llama3_rope");
  EXPECT_EQ(l3.rope_scaling.type, RopeType::kLlama3);
  EXPECT_EQ(l3.rope_scaling.factor, 8.0);
  EXPECT_EQ(l3.rope_scaling.original_max_position_embeddings, 32);
  EXPECT_EQ(load("mistral_swa").sliding_window, 8);
  EXPECT_TRUE(load("qwen2").attention_bias);
  ModelConfig q3 = load("qwen3");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_EQ(q3.head_dim, 32);
  ModelConfig lr = load("phi3_longrope");
  EXPECT_EQ(lr.rope_scaling.type, RopeType::kLongRope);
  EXPECT_EQ(lr.rope_scaling.original_max_position_embeddings, 16);
  // factor = 64 / 16 = 4: sqrt(1 + ln 4 / ln 16) = sqrt(1.5)
  EXPECT_NEAR(lr.rope_scaling.attention_factor, std::sqrt(1.5), 1e-12);
  ModelConfig pp = load("phi3_partial");
  EXPECT_EQ(pp.rotary_dim, 8);
  EXPECT_TRUE(pp.tie_word_embeddings);
  EXPECT_EQ(load("llama_bf16").dtype, DType::kBF16);
  EXPECT_EQ(load("llama").dtype, DType::kF32);
  EXPECT_EQ(load("llama_mlx4").quantization->global, (QuantSpec{4, 64}));
}

// transformers 5 writes `rope_parameters`; real checkpoints have `rope_theta` + `rope_scaling`. The golden
// configs hold both: each form alone must give the same rope.
TEST(Golden, RopeParametersAndClassicKeysAgree) {
  REQUIRE_GOLDEN();
  for (const std::string& name : GoldenCases()) {
    SCOPED_TRACE(name);
    std::string path = GoldenDir() + "/" + name + "/config.json";
    auto j = nlohmann::json::parse(std::ifstream(path));
    auto v5 = j, classic = j;
    v5.erase("rope_theta");
    v5.erase("rope_scaling");
    classic.erase("rope_parameters");
    ModelConfig a = ParseModelConfigJson(v5, path), b = ParseModelConfigJson(classic, path);
    EXPECT_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
    EXPECT_EQ(a.rotary_dim, b.rotary_dim);
    EXPECT_EQ(a.rope_scaling.attention_factor, b.rope_scaling.attention_factor);
    EXPECT_EQ(a.RopeInvFreq(0), b.RopeInvFreq(0));
    EXPECT_EQ(a.RopeInvFreq(a.max_position_embeddings), b.RopeInvFreq(b.max_position_embeddings));
  }
}

// `pensieve quantize` of the float32 golden models reproduces the fixture script's MLX-algorithm files bit for
// bit (tensor names, dtypes, shapes, packed codes, scales, biases; unquantized tensors copied).
TEST(Golden, QuantizeMatchesMlxAlgorithmFixtures) {
  REQUIRE_GOLDEN();
  const std::pair<const char*, int> kCases[] = {{"llama", 4}, {"llama", 8}, {"qwen3", 4},
                                                {"qwen3", 8}, {"phi3", 4},  {"phi3", 8}};
  for (const auto& [base, bits] : kCases) {
    std::string ref_name = std::string(base) + "_mlx" + std::to_string(bits);
    SCOPED_TRACE(ref_name);
    test::TempDir out;
    QuantizeModelDir(GoldenDir() + "/" + base, out.path(), QuantSpec{bits, 64});
    TensorStore ours = TensorStore::Open(out.path());
    TensorStore ref = TensorStore::Open(GoldenDir() + "/" + ref_name + "/model.safetensors");
    ASSERT_EQ(ours.Names(), ref.Names());
    for (const std::string& n : ref.Names()) {
      const TensorView& a = ours.Get(n);
      const TensorView& b = ref.Get(n);
      ASSERT_EQ(a.dtype, b.dtype) << n;
      ASSERT_EQ(a.shape, b.shape) << n;
      EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << n;
    }
    ModelConfig oc = LoadModelConfig(out.path()), rc = LoadModelConfig(GoldenDir() + "/" + ref_name);
    EXPECT_EQ(oc.quantization->global, rc.quantization->global);
  }
}

// bf16 weights: the fixture script mirrors MLX's older op-level path, computed in bf16 arithmetic; we (like
// MLX's current CPU kernel) compute scale and bias in f32 and round them to bf16 on store. Codes and
// parameters may then differ by a rounding step; the dequantized weights must agree to that.
TEST(Golden, QuantizeBf16CloseToFixture) {
  REQUIRE_GOLDEN();
  test::TempDir out;
  QuantizeModelDir(GoldenDir() + "/llama_bf16", out.path(), QuantSpec{4, 64});
  TensorStore ours = TensorStore::Open(out.path());
  TensorStore ref = TensorStore::Open(GoldenDir() + "/llama_bf16_mlx4/model.safetensors");
  ASSERT_EQ(ours.Names(), ref.Names());
  const QuantSpec spec{4, 64};
  size_t elements = 0, differing = 0;
  for (const std::string& n : ref.Names()) {
    if (!n.ends_with(".scales")) continue;
    std::string m = n.substr(0, n.size() - 7);
    const TensorView& sa = ours.Get(m + ".scales");
    ASSERT_EQ(sa.dtype, DType::kBF16);
    const TensorView& wa = ours.Get(m + ".weight");
    const TensorView& wb = ref.Get(m + ".weight");
    const int64_t rows = wa.shape[0], cols = sa.shape[1] * 64;
    std::vector<float> ra(cols), rb(cols);
    for (int64_t r = 0; r < rows; ++r) {
      DequantizeRow(wa.as<uint32_t>() + r * wa.shape[1], sa.as<uint16_t>() + r * sa.shape[1],
                    ours.Get(m + ".biases").as<uint16_t>() + r * sa.shape[1], DType::kBF16, cols, spec, ra.data());
      DequantizeRow(wb.as<uint32_t>() + r * wb.shape[1], ref.Get(m + ".scales").as<uint16_t>() + r * sa.shape[1],
                    ref.Get(m + ".biases").as<uint16_t>() + r * sa.shape[1], DType::kBF16, cols, spec, rb.data());
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t g = r * sa.shape[1] + j / 64;
        float step = std::max(std::abs(BF16ToF32(sa.as<uint16_t>()[g])),
                              std::abs(BF16ToF32(ref.Get(m + ".scales").as<uint16_t>()[g])));
        ASSERT_LE(std::abs(ra[j] - rb[j]), 1.01f * step + 1e-6f) << m << " row " << r << " col " << j;
        differing += ra[j] != rb[j];
        ++elements;
      }
    }
  }
  EXPECT_LT(differing, elements / 10) << differing << " of " << elements << " dequantized values differ";
}

}  // namespace
}  // namespace pensieve

#include "formats/mlx_quant.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "util/error.h"

namespace pensieve {
namespace {

using ::testing::HasSubstr;

// Group 0..31 at 4 bits, worked by hand: max 31 has the larger magnitude, so scale = -(31/15), edge 31,
// q0 = rint(31 / scale) = -15, scale = 31 / -15, bias = 31; code(v) = rint((31 - v) * 15 / 31).
TEST(MlxQuant, HandWorkedGroupPositiveEdge) {
  std::vector<float> w(32);
  for (int i = 0; i < 32; ++i) w[i] = static_cast<float>(i);
  QuantSpec spec{4, 32};
  uint32_t packed[4];
  float scale, bias;
  QuantizeAffineRow(w.data(), 32, spec, packed, DType::kF32, &scale, &bias);
  EXPECT_FLOAT_EQ(scale, 31.0f / -15.0f);
  EXPECT_EQ(bias, 31.0f);
  // codes of v = 0..7: 15 15 14 14 13 13 12 12 (low nibble first)
  EXPECT_EQ(packed[0], 0xCCDDEEFFu);
  EXPECT_EQ(UnpackCode(packed, 16, 4), 7u);   // rint(15 * 15 / 31 = 7.26)
  EXPECT_EQ(UnpackCode(packed, 31, 4), 0u);
  std::vector<float> back(32);
  DequantizeRow(packed, &scale, &bias, DType::kF32, 32, spec, back.data());
  EXPECT_EQ(back[31], 31.0f);  // the edge is exact
  EXPECT_NEAR(back[0], 0.0f, 1e-5);
  for (int i = 0; i < 32; ++i) EXPECT_LE(std::abs(back[i] - w[i]), 31.0f / 15 / 2 + 1e-5) << i;
}

// Negative edge: min -8 dominates; scale = 9/15 = 0.6, q0 = rint(-8/0.6) = -13, scale = -8/-13, bias = -8.
TEST(MlxQuant, HandWorkedGroupNegativeEdge) {
  std::vector<float> w(32, 1.0f);
  w[5] = -8.0f;
  QuantSpec spec{4, 32};
  uint32_t packed[4];
  float scale, bias;
  QuantizeAffineRow(w.data(), 32, spec, packed, DType::kF32, &scale, &bias);
  EXPECT_FLOAT_EQ(scale, 8.0f / 13.0f);
  EXPECT_EQ(bias, -8.0f);
  EXPECT_EQ(UnpackCode(packed, 5, 4), 0u);
  EXPECT_EQ(UnpackCode(packed, 0, 4), 15u);  // rint(9 * 13 / 8 = 14.6)
}

// A constant group: max - min = 0, scale = max(0, 1e-7) with sign, q0 = rint(c / 1e-7) is huge but finite,
// scale = c / q0, bias = c: every code is 0 and the value is reproduced exactly.
TEST(MlxQuant, ConstantGroup) {
  std::vector<float> w(64, 0.75f);
  QuantSpec spec{8, 64};
  uint32_t packed[16];
  float scale, bias;
  QuantizeAffineRow(w.data(), 64, spec, packed, DType::kF32, &scale, &bias);
  EXPECT_EQ(bias, 0.75f);
  std::vector<float> back(64);
  DequantizeRow(packed, &scale, &bias, DType::kF32, 64, spec, back.data());
  for (float v : back) EXPECT_EQ(v, 0.75f);
  std::vector<float> zeros(64, 0.0f);
  QuantizeAffineRow(zeros.data(), 64, spec, packed, DType::kF32, &scale, &bias);
  DequantizeRow(packed, &scale, &bias, DType::kF32, 64, spec, back.data());
  for (float v : back) EXPECT_EQ(v, 0.0f);
}

// 3-bit codes straddle u32 words. Codes j % 8 for j = 0..31 as one little-endian bit stream (code j at
// stream bits 3j..3j+2) are the words below (derived from the stream definition with Python integers).
TEST(MlxQuant, ThreeBitLayoutCrossesWords) {
  const uint32_t expected[3] = {0x88fac688u, 0xc688fac6u, 0xfac688fau};
  for (int j = 0; j < 32; ++j) EXPECT_EQ(UnpackCode(expected, j, 3), static_cast<uint32_t>(j % 8)) << j;
  // Values 7 - c give codes c: max 7 dominates, scale = -1, bias = 7, code = 7 - v.
  std::vector<float> w(32);
  for (int j = 0; j < 32; ++j) w[j] = static_cast<float>(7 - j % 8);
  uint32_t packed[3];
  float scale, bias;
  QuantizeAffineRow(w.data(), 32, QuantSpec{3, 32}, packed, DType::kF32, &scale, &bias);
  EXPECT_EQ(scale, -1.0f);
  EXPECT_EQ(bias, 7.0f);
  EXPECT_EQ(packed[0], expected[0]);
  EXPECT_EQ(packed[1], expected[1]);
  EXPECT_EQ(packed[2], expected[2]);
}

TEST(MlxQuant, EightBitLayout) {
  // 8-bit: code j in word j/4 at shift 8*(j%4).
  uint32_t row[2] = {0x04030201u, 0x08070605u};
  for (int j = 0; j < 8; ++j) EXPECT_EQ(UnpackCode(row, j, 8), static_cast<uint32_t>(j + 1));
}

TEST(MlxQuant, RoundTripErrorBoundAllWidths) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  const int64_t cols = 256;
  std::vector<float> w(cols), back(cols);
  for (float& x : w) x = nd(rng);
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int gs : {32, 64, 128}) {
      QuantSpec spec{bits, gs};
      std::vector<uint32_t> packed(spec.PackedCols(cols));
      std::vector<uint16_t> scales(spec.Groups(cols)), biases(spec.Groups(cols));
      QuantizeAffineRow(w.data(), cols, spec, packed.data(), DType::kBF16, scales.data(), biases.data());
      DequantizeRow(packed.data(), scales.data(), biases.data(), DType::kBF16, cols, spec, back.data());
      for (int64_t g = 0; g < spec.Groups(cols); ++g) {
        float lo = 1e9f, hi = -1e9f;
        for (int i = 0; i < gs; ++i) lo = std::min(lo, w[g * gs + i]), hi = std::max(hi, w[g * gs + i]);
        // MLX rescales so the edge is exact: step' = |edge / q0| may be below the nominal step, and then the far
        // end of the group is clipped by up to n_bins * (step - step'). Within the covered range the error is
        // half a step'; bf16 rounding of scale and bias adds up to ~2^-8 relative of the group's magnitude.
        const float n_bins = static_cast<float>((1 << bits) - 1);
        float step = (hi - lo) / n_bins;
        float step2 = std::abs(BF16ToF32(scales[g]));
        float tol = n_bins * std::max(0.0f, step - step2) + step2 / 2 +
                    std::max(std::abs(lo), std::abs(hi)) * (n_bins + 1) * 0x1p-8f + 1e-6f;
        for (int i = 0; i < gs; ++i)
          ASSERT_LE(std::abs(back[g * gs + i] - w[g * gs + i]), tol) << "bits " << bits << " gs " << gs;
      }
    }
  }
}

TEST(MlxQuant, RejectsUnsupported) {
  float w[64] = {};
  uint32_t packed[64];
  float s[2], b[2];
  try {
    QuantizeAffineRow(w, 64, QuantSpec{7, 64}, packed, DType::kF32, s, b);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("bits=7"));
  }
  EXPECT_THROW(QuantizeAffineRow(w, 64, QuantSpec{4, 48}, packed, DType::kF32, s, b), Error);
  EXPECT_THROW(QuantizeAffineRow(w, 48, QuantSpec{4, 32}, packed, DType::kF32, s, b), Error);
  EXPECT_TRUE(IsSupportedQuant({4, 64}));
  EXPECT_FALSE(IsSupportedQuant({1, 64}));
  EXPECT_FALSE(IsSupportedQuant({16, 64}));
}

TEST(MlxQuantConfig, OverridesAndExclusions) {
  auto j = nlohmann::json::parse(R"({"group_size": 64, "bits": 4,
      "model.layers.0.mlp.down_proj": {"group_size": 32, "bits": 8},
      "model.layers.1.mlp.down_proj": {"bits": 8},
      "lm_head": false})");
  QuantConfig c = QuantConfig::FromJson(j, "config.json: quantization");
  EXPECT_EQ(c.global, (QuantSpec{4, 64}));
  EXPECT_EQ(c.ForModule("model.layers.0.mlp.down_proj"), (QuantSpec{8, 32}));
  EXPECT_EQ(c.ForModule("model.layers.1.mlp.down_proj"), (QuantSpec{8, 64}));  // group size inherited
  EXPECT_FALSE(c.ForModule("lm_head").quantized());
  EXPECT_EQ(c.ForModule("model.layers.0.self_attn.q_proj"), (QuantSpec{4, 64}));
  // ToJson writes what FromJson reads.
  QuantConfig again = QuantConfig::FromJson(c.ToJson(), "x");
  EXPECT_EQ(again.ForModule("model.layers.0.mlp.down_proj"), (QuantSpec{8, 32}));
  EXPECT_FALSE(again.ForModule("lm_head").quantized());
}

TEST(MlxQuantConfig, BadConfigs) {
  auto err = [](const char* text) {
    try {
      QuantConfig::FromJson(nlohmann::json::parse(text), "cfg.json: quantization");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(err(R"({"group_size": 64, "bits": 3.5})"), HasSubstr("bits"));
  EXPECT_THAT(err(R"({"group_size": 64})"), HasSubstr("missing 'bits'"));
  EXPECT_THAT(err(R"({"group_size": 64, "bits": 7})"), HasSubstr("unsupported quantization bits=7"));
  EXPECT_THAT(err(R"({"group_size": 100, "bits": 4})"), HasSubstr("group_size=100"));
  EXPECT_THAT(err(R"({"group_size": 32, "bits": 4, "mode": "mxfp4"})"), HasSubstr("mode"));
  EXPECT_THAT(err(R"({"group_size": 64, "bits": 4, "model.layers.0.mlp.up_proj": {"bits": 1}})"),
              HasSubstr("model.layers.0.mlp.up_proj"));
  EXPECT_THAT(err("[1]"), HasSubstr("cfg.json"));
}

}  // namespace
}  // namespace pensieve

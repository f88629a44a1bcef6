#include "formats/dtype.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

namespace pensieve {
namespace {

TEST(DType, NamesSizesAndParsing) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kU32), 4u);
  EXPECT_EQ(DTypeSize(DType::kI8), 1u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  EXPECT_EQ(ParseDType("BF16"), DType::kBF16);
  EXPECT_EQ(ParseDType("U32"), DType::kU32);
  EXPECT_EQ(ParseDType("BOOL"), DType::kBool);
  EXPECT_FALSE(ParseDType("F8_E4M3").has_value());
  EXPECT_FALSE(ParseDType("f32").has_value());  // safetensors spells dtypes in capitals
  EXPECT_EQ(DTypeName(DType::kF16), "F16");
  EXPECT_EQ(ParseTorchDType("bfloat16"), DType::kBF16);
  EXPECT_EQ(ParseTorchDType("torch.float16"), DType::kF16);
  EXPECT_FALSE(ParseTorchDType("int4").has_value());
}

// Bit patterns from the IEEE/bfloat16 definitions (e.g. 1.0f = 0x3F800000 -> bf16 0x3F80).
TEST(DType, BF16RoundToNearestEven) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3F80);
  EXPECT_EQ(F32ToBF16(-2.0f), 0xC000);
  EXPECT_EQ(F32ToBF16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie, kept bit even: down
  EXPECT_EQ(F32ToBF16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie, kept bit odd: up
  EXPECT_EQ(F32ToBF16(std::bit_cast<float>(0x3F808001u)), 0x3F81);  // above the tie: up
  EXPECT_EQ(F32ToBF16(std::bit_cast<float>(0x3F807FFFu)), 0x3F80);  // below the tie: down
  EXPECT_EQ(F32ToBF16(std::bit_cast<float>(0x7F7FFFFFu)), 0x7F80);  // FLT_MAX rounds to inf
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(std::bit_cast<float>(0x7F800001u)))));  // signalling NaN stays NaN
  EXPECT_EQ(BF16ToF32(0x3F80), 1.0f);
  EXPECT_EQ(BF16ToF32(0x4049), 3.140625f);
}

TEST(DType, F16Conversions) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xC000);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);          // halfway to 2^16, ties to even -> inf
  EXPECT_EQ(F32ToF16(0.1f), 0x2E66);              // numpy.float16(0.1).view(uint16) == 0x2e66
  EXPECT_EQ(F32ToF16(0x1p-24f), 0x0001);          // smallest subnormal
  EXPECT_EQ(F32ToF16(0x1p-25f), 0x0000);          // tie between 0 and 2^-24 -> even (0)
  EXPECT_EQ(F32ToF16(0x1.8p-25f), 0x0001);        // above the tie
  EXPECT_EQ(F32ToF16(0x1p-14f), 0x0400);          // smallest normal
  EXPECT_EQ(F32ToF16(0x1.ff8p-15f), 0x03FF);      // largest subnormal
  EXPECT_EQ(F32ToF16(0x1.ffcp-15f), 0x0400);      // largest subnormal + half ulp: tie, rounds to even (normal)
  EXPECT_EQ(F16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(F16ToF32(0x0001), 0x1p-24f);
  EXPECT_EQ(F16ToF32(0x7BFF), 65504.0f);
  EXPECT_TRUE(std::isinf(F16ToF32(0x7C00)));
  EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(std::numeric_limits<float>::quiet_NaN()))));
  // Every finite half survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;
    ASSERT_EQ(F32ToF16(F16ToF32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(DType, LoadStoreHelpers) {
  unsigned char buf[16] = {};
  StoreFromF32(buf, DType::kBF16, 3, 1.5f);
  EXPECT_EQ(LoadAsF32(buf, DType::kBF16, 3), 1.5f);
  StoreFromF32(buf, DType::kF16, 1, -0.25f);
  EXPECT_EQ(LoadAsF32(buf, DType::kF16, 1), -0.25f);
  StoreFromF32(buf, DType::kF32, 2, 3.25f);
  EXPECT_EQ(LoadAsF32(buf, DType::kF32, 2), 3.25f);
}

}  // namespace
}  // namespace pensieve

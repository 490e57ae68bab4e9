#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "core/error.h"

using namespace sparvar;

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  EXPECT_EQ(dtype_from_name("bfloat16"), DType::BF16);
  EXPECT_EQ(dtype_from_name("F32"), DType::F32);
  EXPECT_THROW(dtype_from_name("f8"), Error);
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f).bits, 0x3f80);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even one (1.0).
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)).bits, 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)).bits, 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.f, 10.f);
  for (int i = 0; i < 10000; ++i) {
    float x = dist(rng);
    float y = bf16_to_float(float_to_bf16(x));
    EXPECT_LE(std::fabs(x - y), std::fabs(x) * (1.0f / 256.0f));
  }
}

TEST(DType, F16RoundTripAndEdges) {
  EXPECT_EQ(float_to_f16(1.0f).bits, 0x3c00);
  EXPECT_EQ(float_to_f16(-2.0f).bits, 0xc000);
  EXPECT_EQ(float_to_f16(65504.0f).bits, 0x7bff);
  EXPECT_EQ(float_to_f16(1e6f).bits, 0x7c00);
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)).bits, 0x0001);  // smallest subnormal
  EXPECT_FLOAT_EQ(f16_to_float(f16_t{0x0001}), std::ldexp(1.0f, -24));
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1000.f, 1000.f);
  for (int i = 0; i < 10000; ++i) {
    float x = dist(rng);
    float y = f16_to_float(float_to_f16(x));
    EXPECT_LE(std::fabs(x - y), std::fabs(x) * (1.0f / 2048.0f) + 1e-7f);
    EXPECT_EQ(float_to_f16(y).bits, float_to_f16(x).bits);
  }
}

TEST(DType, ConvertElements) {
  const float src[4] = {1.5f, -2.25f, 3.0f, 0.5f};
  bf16_t mid[4];
  float back[4];
  convert_elements(src, DType::F32, mid, DType::BF16, 4);
  convert_elements(mid, DType::BF16, back, DType::F32, 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(src[i], back[i]);
  const int64_t big[2] = {7, -9};
  int32_t small[2];
  convert_elements(big, DType::I64, small, DType::I32, 2);
  EXPECT_EQ(small[0], 7);
  EXPECT_EQ(small[1], -9);
}

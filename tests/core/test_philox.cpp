#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "core/philox.h"

using namespace sparvar;

namespace {
void expect_block(PhiloxCounter c, PhiloxKey k, uint32_t a, uint32_t b, uint32_t d, uint32_t e) {
  const PhiloxCounter out = philox4x32_10(c, k);
  EXPECT_EQ(out.v[0], a);
  EXPECT_EQ(out.v[1], b);
  EXPECT_EQ(out.v[2], d);
  EXPECT_EQ(out.v[3], e);
}
}  // namespace

// Known-answer vectors of Random123 (kat_vectors, philox4x32 with 10 rounds), re-derived with an independent
// Python transcription of the round function before being written here.
TEST(Philox, KnownAnswers) {
  expect_block({{0, 0, 0, 0}}, {{0, 0}}, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
  expect_block({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, {{0xffffffffu, 0xffffffffu}}, 0x408f276du,
               0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
  expect_block({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, {{0xa4093822u, 0x299f31d0u}}, 0xd16cfe09u,
               0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

TEST(Philox, StreamLayout) {
  // Element i of (seed, offset) is word i%4 of block i/4 with counter {i/4, 0, lo(offset), hi(offset)}.
  const uint64_t seed = 0x0000000500000007ull, offset = 0x0000000300000002ull;
  const PhiloxCounter block = philox4x32_10({{2, 0, 2, 3}}, {{7, 5}});
  for (unsigned lane = 0; lane < 4; ++lane) EXPECT_EQ(philox_u32(seed, offset, 8 + lane), block.v[lane]);
  EXPECT_EQ(uniform_float(seed, offset, 9), static_cast<float>(block.v[1] >> 8) / 16777216.0f);
  // Block index (2^34 + 20) / 4 = 2^32 + 5: its high half reaches counter word 1.
  EXPECT_EQ(philox_u32(1, 0, (1ull << 34) + 4 * 5),
            philox4x32_10({{5, 1, 0, 0}}, {{1, 0}}).v[0]);
}

TEST(Philox, FillMatchesPerElementFunctions) {
  const PhiloxStream stream(42, 7);
  std::vector<float> u(37), n(37), n_shifted(30);
  stream.fill_uniform(u.data(), u.size());
  stream.fill_normal(n.data(), n.size());
  stream.fill_normal(n_shifted.data(), n_shifted.size(), 7);  // starts mid-block
  for (uint64_t i = 0; i < u.size(); ++i) {
    EXPECT_EQ(u[i], uniform_float(42, 7, i));
    EXPECT_EQ(n[i], normal_float(42, 7, i));
  }
  for (uint64_t j = 0; j < n_shifted.size(); ++j) EXPECT_EQ(n_shifted[j], n[j + 7]);
}

TEST(Philox, SeedsAndOffsetsGiveDifferentStreams) {
  std::set<uint32_t> seen;
  for (uint64_t seed = 0; seed < 4; ++seed)
    for (uint64_t offset = 0; offset < 4; ++offset) seen.insert(philox_u32(seed, offset, 0));
  EXPECT_EQ(seen.size(), 16u);
  EXPECT_NE(philox_u32(0, 1ull << 32, 0), philox_u32(0, 0, 0));
  EXPECT_NE(philox_u32(1ull << 32, 0, 0), philox_u32(0, 0, 0));
}

TEST(Philox, UniformStatistics) {
  const int n = 1 << 20;
  std::vector<float> u(n);
  PhiloxStream(123, 0).fill_uniform(u.data(), n);
  double sum = 0, sum2 = 0;
  std::vector<int> bins(16, 0);
  for (float x : u) {
    ASSERT_GE(x, 0.0f);
    ASSERT_LT(x, 1.0f);
    sum += x;
    sum2 += static_cast<double>(x) * x;
    ++bins[static_cast<int>(x * 16)];
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  EXPECT_NEAR(var, 1.0 / 12, 1e-3);
  double chi2 = 0;
  const double expected = n / 16.0;
  for (int b : bins) chi2 += (b - expected) * (b - expected) / expected;
  EXPECT_LT(chi2, 40.0);  // 15 degrees of freedom: p < 1e-3 above 37.7
}

TEST(Philox, NormalStatistics) {
  const int n = 1 << 20;
  std::vector<float> z(n);
  PhiloxStream(99, 3).fill_normal(z.data(), n);
  double sum = 0, sum2 = 0, sum4 = 0, lag = 0;
  int beyond2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = z[i];
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sum2 += x * x;
    sum4 += x * x * x * x;
    if (i > 0) lag += x * z[i - 1];
    beyond2 += std::fabs(x) > 2.0;
  }
  EXPECT_NEAR(sum / n, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(sum2 / n, 1.0, 0.01);
  EXPECT_NEAR(sum4 / n, 3.0, 0.05);
  EXPECT_NEAR(lag / n, 0.0, 0.01);  // the sin/cos pair of Box-Muller is uncorrelated
  EXPECT_NEAR(static_cast<double>(beyond2) / n, 0.0455, 0.002);
}

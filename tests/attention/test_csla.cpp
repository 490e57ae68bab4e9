#include <gtest/gtest.h>

#include <random>

#include "attention/pattern_csla.h"
#include "attention_test_util.h"
#include "core/error.h"

using namespace sparvar;

namespace {

// Does the token rectangle a of grid ga, grown by g tokens of grid gb, overlap the rectangle b of grid gb,
// as normalised regions? Exact integer cross-multiplication, one axis.
bool overlaps_1d(int a0, int a1, int na, int b0, int b1, int nb, int grow) {
  // [a0/na - g/nb, a1/na + g/nb) vs [b0/nb, b1/nb), strict.
  return int64_t{b0} * na < int64_t{a1} * nb + int64_t{grow} * na &&
         int64_t{a0} * nb - int64_t{grow} * na < int64_t{b1} * na;
}

// CSLA from its definition, block pair by block pair.
std::vector<std::vector<char>> brute_force(const ScaleLayouts& l, const CslaOptions& o) {
  const int k = l.q.first_scale();
  const ScaleBlocks& qs = l.q.scale(k);
  std::vector<std::vector<char>> listed(l.q.num_blocks(), std::vector<char>(l.k.num_blocks(), 0));
  const bool dense = k < o.sink_scales || qs.grid.tokens() < o.dense_below_tokens;
  for (int qb = 0; qb < l.q.num_blocks(); ++qb) {
    const TokenRect R = l.q.blocks()[qb].rect;
    for (int kb = 0; kb < l.k.num_blocks(); ++kb) {
      const BlockInfo& b = l.k.blocks()[kb];
      bool on;
      if (dense || b.scale < o.sink_scales) {
        on = true;
      } else if (b.scale < k) {
        const ScaleGrid g = l.k.scale(b.scale).grid;
        const int r = o.window_for_scale(b.scale);
        on = overlaps_1d(R.y0, R.y1, qs.grid.h, b.rect.y0, b.rect.y1, g.h, r) &&
             overlaps_1d(R.x0, R.x1, qs.grid.w, b.rect.x0, b.rect.x1, g.w, r);
      } else {
        const int ry = o.own_radius_tiles * l.q.tile().h, rx = o.own_radius_tiles * l.q.tile().w;
        on = b.rect.y0 < R.y1 + ry && R.y0 - ry < b.rect.y1 && b.rect.x0 < R.x1 + rx && R.x0 - rx < b.rect.x1;
      }
      listed[qb][kb] = on;
    }
  }
  return listed;
}

void expect_matches_brute_force(const ScaleSchedule& s, int k, const CslaOptions& o) {
  ScaleLayouts l = make_scale_layouts(s, k, o.q_tile, o.k_tile, o.packed_scales);
  BlockPattern p = build_csla_pattern(l.q, l.k, o, 3);
  ASSERT_NO_THROW(validate(p));
  EXPECT_EQ(p.heads, 3);
  auto expect = brute_force(l, o);
  for (int qb = 0; qb < p.num_q_blocks; ++qb) {
    std::vector<char> got(p.num_k_blocks, 0);
    for (int32_t c : p.row(2, qb)) got[c] = 1;
    ASSERT_EQ(got, expect[qb]) << s.name() << " scale " << k << " query block " << qb;
  }
}

}  // namespace

TEST(Csla, MatchesDefinitionOnInfinitySchedules) {
  for (double r : {1.0, 0.75, 2.0, 1.0 / 3.0}) {
    ScaleSchedule s = infinity_schedule(r, PixelBudget::M1);
    for (int k : {6, 9, 11, 12}) {
      CslaOptions o;
      o.dense_below_tokens = 0;
      expect_matches_brute_force(s, k, o);
      o.q_tile = {8, 16};
      o.k_tile = {8, 16};
      o.window_tokens = 4;
      o.sink_scales = 4;
      o.packed_scales = 4;
      expect_matches_brute_force(s, k, o);
      o.k_tile = {8, 8};
      o.own_radius_tiles = 0;
      o.window_tokens_per_scale = {-1, -1, -1, -1, -1, -1, 0, 1, 3};
      expect_matches_brute_force(s, k, o);
    }
  }
}

TEST(Csla, MatchesDefinitionOnOddSchedules) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    ScaleSchedule s = test::random_schedule(3 + trial % 5, 40, rng);
    CslaOptions o;
    o.q_tile = {1 + int(rng() % 8), 1 + int(rng() % 12)};
    o.k_tile = {1 + int(rng() % 8), 1 + int(rng() % 12)};
    o.sink_scales = int(rng() % 3);
    o.packed_scales = int(rng() % (o.sink_scales + 1));
    o.window_tokens = int(rng() % 4);
    o.own_radius_tiles = int(rng() % 3);
    o.dense_below_tokens = rng() % 2 ? 0 : 200;
    for (int k = 0; k < s.num_scales(); ++k) expect_matches_brute_force(s, k, o);
  }
}

TEST(Csla, DenseBelowThresholdAndSinkScales) {
  ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M1);
  CslaOptions o;  // defaults: sinks 6, dense below 1024 tokens
  BlockSparseLayout small = build_csla(s, 8, o);  // 24x24 = 576 tokens: dense
  EXPECT_DOUBLE_EQ(measure_density(small).block_fraction(), 1.0);
  BlockSparseLayout last = build_csla(s, 12, o, 2);
  EXPECT_EQ(last.pattern.heads, 2);
  EXPECT_TRUE(last.pattern.shared_across_heads);
  const int sinks = TileLayout::build(s, 0, 12, o.k_tile).blocks_below(6);
  for (int qb = 0; qb < last.pattern.num_q_blocks; ++qb) {
    auto row = last.pattern.row(1, qb);
    for (int c = 0; c < sinks; ++c) EXPECT_EQ(row[c], c);  // sinks always listed, first
  }
  PatternDensity d = measure_density(last);
  EXPECT_LT(d.block_fraction(), 0.3);
  EXPECT_GT(d.block_fraction(), 0.1);
  o.packed_scales = 7;  // more than the sinks
  EXPECT_THROW(build_csla(s, 12, o), Error);
}

// The densities method.md expects from geometry alone (last scale, 3x3 own window, sinks 4-6 scales,
// earlier scales grown by 1-4 tokens): 64x64 blocks 15-21%, 128x128 26-33% of key tokens per query tile.
TEST(Csla, LastScaleDensityInTheExpectedRange) {
  ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M1);
  for (int tw : {8, 16}) {
    CslaOptions o;
    o.q_tile = o.k_tile = {8, tw};
    o.sink_scales = 5;
    o.window_tokens = 2;
    const double f = measure_density(build_csla(s, 12, o)).cost_fraction();
    if (tw == 8) {
      EXPECT_GT(f, 0.13);
      EXPECT_LT(f, 0.23);
    } else {
      EXPECT_GT(f, 0.24);
      EXPECT_LT(f, 0.35);
    }
  }
}

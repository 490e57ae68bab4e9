#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "attention/pattern_cs4a.h"
#include "attention_test_util.h"
#include "core/error.h"

using namespace sparvar;

namespace {

// Random block masses [heads, nq, nk]: peaked rows (a few large entries), some exact zeros, rows sum to 1.
std::vector<float> random_mass(int heads, int nq, int nk, std::mt19937& rng) {
  std::exponential_distribution<float> e(1.0f);
  std::vector<float> m(size_t(heads) * nq * nk);
  for (size_t r = 0; r < size_t(heads) * nq; ++r) {
    float* row = m.data() + r * nk;
    double sum = 0;
    for (int c = 0; c < nk; ++c) {
      const float x = e(rng);
      row[c] = rng() % 5 == 0 ? 0.0f : x * x * x * x;
      sum += row[c];
    }
    if (sum == 0) row[0] = 1.0f, sum = 1.0;
    for (int c = 0; c < nk; ++c) row[c] = static_cast<float>(row[c] / sum);
  }
  return m;
}

bool regions_overlap(const TokenRect& a, ScaleGrid ga, const TokenRect& b, ScaleGrid gb) {
  return int64_t{a.y0} * gb.h < int64_t{b.y1} * ga.h && int64_t{b.y0} * ga.h < int64_t{a.y1} * gb.h &&
         int64_t{a.x0} * gb.w < int64_t{b.x1} * ga.w && int64_t{b.x0} * ga.w < int64_t{a.x1} * gb.w;
}

}  // namespace

// The selection is characterised by properties, checked row by row: forced blocks kept; the chosen
// non-forced blocks are the heaviest ones; their mass reaches tau (unless the cap or the positive blocks
// ran out) and dropping the lightest chosen one would not.
TEST(Cs4a, SelectionIsTheSmallestSetReachingTau) {
  std::mt19937 rng(3);
  ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M0_25);  // ends at 32x32
  for (TileShape t : {TileShape{8, 8}, TileShape{8, 16}}) {
    for (int cap : {0, 12}) {
      Cs4aOptions o;
      o.q_tile = o.k_tile = t;
      o.tau = 0.9f;
      o.max_blocks_per_row = cap;
      o.sink_scales = 4;
      const int kd = o.resolve_decision_scale(s);
      EXPECT_EQ(kd, 6);
      ScaleLayouts l = make_scale_layouts(s, 9, t, t);  // decide at the last scale here
      const int nq = l.q.num_blocks(), nk = l.k.num_blocks(), heads = 3;
      std::vector<float> mass = random_mass(heads, nq, nk, rng);
      BlockPattern p = cs4a_select(mass, heads, l, o);
      ASSERT_NO_THROW(validate(p));
      EXPECT_FALSE(p.shared_across_heads);
      const int sinks = l.k.blocks_below(4);
      for (int h = 0; h < heads; ++h) {
        for (int qb = 0; qb < nq; ++qb) {
          const float* m = mass.data() + (size_t(h) * nq + qb) * nk;
          std::vector<char> sel(nk, 0), forced(nk, 0);
          for (int32_t c : p.row(h, qb)) sel[c] = 1;
          for (int c = 0; c < sinks; ++c) forced[c] = 1;
          forced[l.k.scale(9).first_block + qb] = 1;  // same tiles: own block = same tile
          double kept = 0, lightest = 2;
          int count = 0, chosen = 0;
          for (int c = 0; c < nk; ++c) {
            if (forced[c]) { ASSERT_TRUE(sel[c]) << "forced block " << c << " dropped"; }
            if (!sel[c]) continue;
            kept += m[c];
            ++count;
            if (!forced[c]) lightest = std::min<double>(lightest, m[c]), ++chosen;
          }
          for (int c = 0; c < nk; ++c)
            if (!sel[c] && chosen > 0) { ASSERT_LE(m[c], lightest) << "a heavier block was left out"; }
          int positive_left = 0;
          for (int c = 0; c < nk; ++c) positive_left += !sel[c] && m[c] > 0;
          const bool capped = cap > 0 && count >= cap;
          if (!capped && positive_left > 0) { ASSERT_GE(kept, o.tau - 1e-6); }
          if (chosen > 0) { ASSERT_LT(kept - lightest, o.tau + 1e-6) << "not minimal"; }
          if (cap > 0 && chosen > 0) { ASSERT_LE(count, std::max(cap, sinks + 1)); }
        }
      }
    }
  }
}

TEST(Cs4a, SelectionRejectsBadMass) {
  ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M0_25);
  ScaleLayouts l = make_scale_layouts(s, 9, {8, 8}, {8, 8});
  const int nq = l.q.num_blocks(), nk = l.k.num_blocks();
  std::mt19937 rng(5);
  std::vector<float> m = random_mass(2, nq, nk, rng);
  Cs4aOptions o;
  EXPECT_THROW(cs4a_select(std::span<const float>(m).first(m.size() - 1), 2, l, o), Error);
  std::vector<float> bad = m;
  bad[5] = -0.5f;
  EXPECT_THROW(cs4a_select(bad, 2, l, o), Error);
  bad = m;
  bad[nk + 1] += 0.5f;  // row sum 1.5
  EXPECT_THROW(cs4a_select(bad, 2, l, o), Error);
  o.tau = 0.0f;
  EXPECT_THROW(cs4a_select(m, 2, l, o), Error);
}

// Mapping checked against the definition, block pair by block pair.
TEST(Cs4a, MappingMatchesDefinition) {
  std::mt19937 rng(9);
  struct Case {
    ScaleSchedule s;
    TileShape qt, kt;
    int packed;
    bool own_window;
  };
  std::vector<Case> cases = {
      {infinity_schedule(1.0, PixelBudget::M1), {8, 8}, {8, 8}, 0, false},
      {infinity_schedule(1.0, PixelBudget::M1), {8, 16}, {8, 8}, 5, true},
      {infinity_schedule(0.4, PixelBudget::M1), {8, 16}, {8, 16}, 0, false},
      {infinity_schedule(1.75, PixelBudget::M1), {8, 8}, {8, 8}, 3, true},
      {ScaleSchedule("odd", {{1, 1}, {2, 3}, {5, 4}, {9, 7}, {13, 11}, {19, 17}, {25, 23}}), {4, 4}, {3, 5}, 2, true},
  };
  for (const Case& c : cases) {
    Cs4aOptions o;
    o.q_tile = c.qt;
    o.k_tile = c.kt;
    o.packed_scales = c.packed;
    o.union_own_window = c.own_window;
    o.tau = 0.8f;
    o.sink_scales = 3;
    const int kd = o.resolve_decision_scale(c.s);
    for (int k = kd; k < c.s.num_scales(); ++k) {
      Cs4aMapper mapper(c.s, k, o);
      const ScaleLayouts& dl = mapper.decision_layouts();
      const ScaleLayouts& tl = mapper.layouts();
      const int heads = 2;
      std::vector<float> mass = random_mass(heads, dl.q.num_blocks(), dl.k.num_blocks(), rng);
      BlockPattern dec = cs4a_select(mass, heads, dl, o);
      BlockSparseLayout mapped = mapper.map_layout(dec);
      const ScaleGrid gq = tl.q.scale(k).grid, gd = dl.q.scale(kd).grid, gkd = tl.k.scale(kd).grid;
      const int first_kd = tl.k.scale(kd).first_block;
      for (int h = 0; h < heads; ++h) {
        for (int qb = 0; qb < tl.q.num_blocks(); ++qb) {
          const TokenRect R = tl.q.blocks()[qb].rect;
          // Decision block: the one containing the centre (double arithmetic, independent of the code).
          const double cy = (R.y0 + R.y1) / 2.0 / gq.h, cx = (R.x0 + R.x1) / 2.0 / gq.w;
          const int dy = int(cy * gd.h) / c.qt.h, dx = int(cx * gd.w) / c.qt.w;
          const int d = dl.q.scale(kd).block_of_tile(dy, dx);
          ASSERT_EQ(mapper.decision_block_of(qb), d);
          auto drow = dec.row(h, d);
          std::vector<char> expect(tl.k.num_blocks(), 0), got(tl.k.num_blocks(), 0);
          for (int32_t sel : drow) {
            if (sel < first_kd) {
              expect[sel] = 1;
              continue;
            }
            const TokenRect sr = dl.k.blocks()[sel].rect;
            for (int kb = first_kd; kb < tl.k.num_blocks(); ++kb) {
              const BlockInfo& b = tl.k.blocks()[kb];
              if (regions_overlap(sr, gkd, b.rect, tl.k.scale(b.scale).grid)) expect[kb] = 1;
            }
          }
          if (c.own_window) {
            for (int kb = tl.k.scale(k).first_block; kb < tl.k.num_blocks(); ++kb) {
              const TokenRect b = tl.k.blocks()[kb].rect;
              if (b.y0 < R.y1 + c.qt.h && R.y0 - c.qt.h < b.y1 && b.x0 < R.x1 + c.qt.w && R.x0 - c.qt.w < b.x1)
                expect[kb] = 1;
            }
          }
          for (int32_t col : mapped.pattern.row(h, qb)) got[col] = 1;
          ASSERT_EQ(got, expect) << c.s.name() << " k " << k << " head " << h << " q block " << qb;
        }
      }
      if (k == kd && !c.own_window && c.qt == c.kt) {
        EXPECT_EQ(mapped.pattern.col_blocks, dec.col_blocks);  // identity at the decision scale
      }
    }
  }
}

TEST(Cs4a, MapperRejectsEarlierScalesAndMismatchedPatterns) {
  ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M1);
  Cs4aOptions o;
  EXPECT_EQ(o.resolve_decision_scale(s), 9);
  EXPECT_THROW(Cs4aMapper(s, 8, o), Error);
  Cs4aMapper m(s, 12, o);
  EXPECT_THROW(m.map(dense_pattern(3, 4)), Error);
  o.decision_scale = 2;
  o.packed_scales = 4;
  EXPECT_THROW(o.resolve_decision_scale(s), Error);
}

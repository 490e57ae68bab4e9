#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/pattern_cs4a.h"
#include "attention/pattern_csla.h"
#include "attention/reference.h"
#include "attention_test_util.h"
#include "core/error.h"

using namespace sparvar;

namespace {

// Row-major q/k/v of one attention call, and their padded tile-ordered copies (padding = NaN).
struct Inputs {
  int64_t B = 2, H = 0, D = 0, Nq = 0, Nk = 0;
  std::vector<float> q, k, v;  // row-major [B, H, N, D]
  Tensor qt, kt, vt;           // padded tile order
};

Tensor to_padded(const std::vector<float>& rows, const TileLayout& L, int64_t BH, int64_t D) {
  Tensor t = Tensor::empty({BH, L.num_slots(), D}, DType::F32);
  float* p = t.data_as<float>();
  for (int64_t i = 0; i < BH; ++i)
    rows_to_padded(L, std::span<const float>(rows).subspan(i * L.num_rows() * D, L.num_rows() * D),
                   std::span<float>(p + i * L.num_slots() * D, L.num_slots() * D), D, NAN);
  return t;
}

Inputs make_inputs(const ScaleLayouts& l, int64_t H, int64_t D, std::mt19937& rng) {
  Inputs in;
  in.H = H;
  in.D = D;
  in.Nq = l.q.num_rows();
  in.Nk = l.k.num_rows();
  in.q = test::random_floats(in.B * H * in.Nq * D, rng);
  in.k = test::random_floats(in.B * H * in.Nk * D, rng);
  in.v = test::random_floats(in.B * H * in.Nk * D, rng);
  in.qt = to_padded(in.q, l.q, in.B * H, D).view({in.B, H, l.q.num_slots(), D});
  in.kt = to_padded(in.k, l.k, in.B * H, D).view({in.B, H, l.k.num_slots(), D});
  in.vt = to_padded(in.v, l.k, in.B * H, D).view({in.B, H, l.k.num_slots(), D});
  return in;
}

// Naive attention on row-major tokens, in double, -inf where the mask says no (mask empty = dense).
// Also the per-query share of mass in each key block, averaged per query block: [B, H, nq, nk].
void naive(const Inputs& in, const std::vector<std::vector<std::vector<char>>>& mask, float scale,
           const ScaleLayouts& l, std::vector<double>& out, std::vector<double>& block_mass) {
  const std::vector<int> qb = test::block_of_row(l.q), kb = test::block_of_row(l.k);
  const int nqb = l.q.num_blocks(), nkb = l.k.num_blocks();
  out.assign(in.B * in.H * in.Nq * in.D, 0.0);
  block_mass.assign(in.B * in.H * nqb * nkb, 0.0);
  std::vector<double> w(in.Nk);
  for (int64_t b = 0; b < in.B; ++b) {
    for (int64_t h = 0; h < in.H; ++h) {
      const int64_t bh = b * in.H + h;
      for (int64_t i = 0; i < in.Nq; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < in.Nk; ++j) {
          double s = 0;
          for (int64_t d = 0; d < in.D; ++d)
            s += double(in.q[(bh * in.Nq + i) * in.D + d]) * in.k[(bh * in.Nk + j) * in.D + d];
          w[j] = mask.empty() || mask[h][i][j] ? s * scale : -INFINITY;
          mx = std::max(mx, w[j]);
        }
        double sum = 0;
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < in.Nk; ++j) {
          const double p = w[j] / sum;
          for (int64_t d = 0; d < in.D; ++d) out[(bh * in.Nq + i) * in.D + d] += p * in.v[(bh * in.Nk + j) * in.D + d];
          block_mass[(bh * nqb + qb[i]) * nkb + kb[j]] += p / l.q.block_valid()[qb[i]];
        }
      }
    }
  }
}

// Runs the reference on `pattern` and compares with naive masked attention (and, for a dense pattern,
// unmasked attention) after undoing the tile permutation.
void check(const ScaleLayouts& l, const BlockPattern& pattern, int64_t D, std::mt19937& rng, bool dense = false) {
  BlockSparseLayout layout = make_block_sparse_layout(pattern, l.q, l.k);
  Inputs in = make_inputs(l, pattern.heads, D, rng);
  const float scale = 1.0f / std::sqrt(float(D));
  Tensor out = Tensor::empty(in.qt.shape(), DType::F32);
  Tensor mass = Tensor::empty({in.B, in.H, pattern.num_q_blocks, pattern.num_k_blocks}, DType::F32);
  std::fill(out.data_as<float>(), out.data_as<float>() + out.numel(), NAN);
  std::fill(mass.data_as<float>(), mass.data_as<float>() + mass.numel(), NAN);
  reference_block_sparse_attention(in.qt, in.kt, in.vt, layout, scale, out, &mass);

  std::vector<double> want, want_mass;
  naive(in, dense ? decltype(test::token_mask(pattern, l.q, l.k)){} : test::token_mask(pattern, l.q, l.k), scale, l,
        want, want_mass);
  const float* o = out.data_as<float>();
  std::vector<float> rows(in.Nq * D);
  double worst = 0;
  for (int64_t bh = 0; bh < in.B * in.H; ++bh) {
    const float* po = o + bh * l.q.num_slots() * D;
    for (int64_t s = 0; s < l.q.num_slots(); ++s)
      if (l.q.row_of_slot()[s] < 0) { ASSERT_EQ(po[s * D], 0.0f) << "padding row not zeroed"; }
    padded_to_rows(l.q, std::span<const float>(po, l.q.num_slots() * D), rows, D);
    for (int64_t i = 0; i < in.Nq * D; ++i) {
      ASSERT_TRUE(std::isfinite(rows[i]));
      worst = std::max(worst, std::fabs(rows[i] - want[bh * in.Nq * D + i]));
    }
  }
  EXPECT_LT(worst, 2e-6) << "D " << D;
  const float* m = mass.data_as<float>();
  for (size_t i = 0; i < want_mass.size(); ++i) ASSERT_NEAR(m[i], want_mass[i], 1e-6) << "block mass " << i;
  // Listed-only mass: unlisted blocks are exactly 0, and rows sum to 1.
  for (int64_t bh = 0; bh < in.B * in.H; ++bh) {
    for (int qb = 0; qb < pattern.num_q_blocks; ++qb) {
      const float* row = m + (bh * pattern.num_q_blocks + qb) * pattern.num_k_blocks;
      double sum = 0;
      std::vector<char> listed(pattern.num_k_blocks, 0);
      for (int32_t c : pattern.row(int(bh % in.H), qb)) listed[c] = 1;
      for (int c = 0; c < pattern.num_k_blocks; ++c) {
        sum += row[c];
        if (!listed[c]) { ASSERT_EQ(row[c], 0.0f); }
      }
      ASSERT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

BlockPattern random_pattern(int nq, int nk, int heads, std::mt19937& rng) {
  BlockPattern p = test::empty_per_head_pattern(heads, nq, nk);
  for (int r = 0; r < heads * nq; ++r) {
    const int before = static_cast<int>(p.col_blocks.size());
    for (int c = 0; c < nk; ++c)
      if (rng() % 3 == 0) p.col_blocks.push_back(c);
    if (static_cast<int>(p.col_blocks.size()) == before) p.col_blocks.push_back(int(rng() % nk));
    p.row_offsets.push_back(static_cast<int32_t>(p.col_blocks.size()));
  }
  return p;
}

}  // namespace

TEST(Reference, DenseEqualsUnmaskedAttention) {
  std::mt19937 rng(21);
  ScaleSchedule odd("odd", {{1, 1}, {2, 3}, {5, 4}, {7, 9}, {11, 10}});
  for (int64_t D : {64, 128}) {
    for (auto [qt, kt] : {std::pair{TileShape{4, 4}, TileShape{4, 4}}, {TileShape{3, 5}, TileShape{4, 8}}}) {
      ScaleLayouts l = make_scale_layouts(odd, 4, qt, kt, D == 64 ? 2 : 0);
      check(l, dense_pattern(l.q.num_blocks(), l.k.num_blocks(), 2), D, rng, /*dense=*/true);
    }
  }
  ScaleSchedule wide = infinity_schedule(0.5, PixelBudget::M0_06);
  ScaleLayouts l = make_scale_layouts(wide, 5, {8, 16}, {8, 8});
  check(l, dense_pattern(l.q.num_blocks(), l.k.num_blocks(), 1), 64, rng, true);
}

TEST(Reference, RandomPatternsMatchMaskedAttention) {
  std::mt19937 rng(22);
  for (int trial = 0; trial < 6; ++trial) {
    ScaleSchedule s = test::random_schedule(4, 14, rng);
    TileShape qt{1 + int(rng() % 5), 1 + int(rng() % 6)}, kt{1 + int(rng() % 5), 1 + int(rng() % 6)};
    ScaleLayouts l = make_scale_layouts(s, 3, qt, kt, int(rng() % 3));
    const int64_t D = trial % 2 ? 128 : 64;
    check(l, random_pattern(l.q.num_blocks(), l.k.num_blocks(), 2, rng), D, rng);
  }
}

TEST(Reference, CslaAndCs4aPatternsMatchMaskedAttention) {
  std::mt19937 rng(23);
  ScaleSchedule s = infinity_schedule(1.0 / 3.0, PixelBudget::M0_06);  // ends at 9x27
  CslaOptions co;
  co.q_tile = {4, 4};
  co.k_tile = {4, 8};
  co.sink_scales = 3;
  co.packed_scales = 2;
  co.dense_below_tokens = 0;
  co.window_tokens = 1;
  for (int64_t D : {64, 128}) {
    BlockSparseLayout csla = build_csla(s, 6, co, 2);
    ScaleLayouts l = make_scale_layouts(s, 6, co.q_tile, co.k_tile, co.packed_scales);
    EXPECT_LT(measure_density(csla).block_fraction(), 0.9);
    check(l, csla.pattern, D, rng);
  }

  // CS4A end to end: dense attention at the decision scale emits block mass, selection, mapping to the
  // last scale, reference on the mapped pattern.
  Cs4aOptions o;
  o.q_tile = {4, 4};
  o.k_tile = {4, 4};
  o.sink_scales = 2;
  o.tau = 0.7f;
  o.union_own_window = true;
  const int kd = o.resolve_decision_scale(s);  // 7 scales -> 3
  Cs4aMapper mapper(s, 6, o);
  const ScaleLayouts& dl = mapper.decision_layouts();
  const int H = 2;
  BlockSparseLayout dense_d = make_block_sparse_layout(dense_pattern(dl.q.num_blocks(), dl.k.num_blocks(), H), dl.q, dl.k);
  Inputs in = make_inputs(dl, H, 64, rng);
  Tensor out = Tensor::empty(in.qt.shape(), DType::F32);
  Tensor mass = Tensor::empty({in.B, H, dl.q.num_blocks(), dl.k.num_blocks()}, DType::F32);
  reference_block_sparse_attention(in.qt, in.kt, in.vt, dense_d, 0.125f, out, &mass);
  // Batch item 0's mass drives the pattern (the conditional half under CFG).
  std::span<const float> m0(mass.data_as<float>(), size_t(H) * dl.q.num_blocks() * dl.k.num_blocks());
  BlockPattern dec = cs4a_select(m0, H, dl, o);
  EXPECT_EQ(kd, 3);
  BlockSparseLayout mapped = mapper.map_layout(dec);
  EXPECT_LT(measure_density(mapped).block_fraction(), 1.0);
  check(mapper.layouts(), mapped.pattern, 64, rng);
  check(mapper.layouts(), mapped.pattern, 128, rng);
}

TEST(Reference, RejectsMismatchedTensors) {
  ScaleSchedule s("t", {{2, 2}, {4, 4}});
  ScaleLayouts l = make_scale_layouts(s, 1, {2, 2}, {2, 2});
  BlockSparseLayout layout = make_block_sparse_layout(dense_pattern(l.q.num_blocks(), l.k.num_blocks(), 2), l.q, l.k);
  Tensor q = Tensor::zeros({1, 2, l.q.num_slots(), 8}, DType::F32);
  Tensor k = Tensor::zeros({1, 2, l.k.num_slots(), 8}, DType::F32);
  Tensor out = Tensor::zeros({1, 2, l.q.num_slots(), 8}, DType::F32);
  EXPECT_NO_THROW(reference_block_sparse_attention(q, k, k, layout, 1.0f, out));
  Tensor k_short = Tensor::zeros({1, 2, l.k.num_slots() - 1, 8}, DType::F32);
  EXPECT_THROW(reference_block_sparse_attention(q, k_short, k, layout, 1.0f, out), Error);
  Tensor q3 = Tensor::zeros({1, 3, l.q.num_slots(), 8}, DType::F32);
  EXPECT_THROW(reference_block_sparse_attention(q3, k, k, layout, 1.0f, out), Error);
  Tensor mass_bad = Tensor::zeros({1, 2, 1, 1}, DType::F32);
  EXPECT_THROW(reference_block_sparse_attention(q, k, k, layout, 1.0f, out, &mass_bad), Error);
}

// The fast fp32 CPU block-sparse attention against the double-precision reference: random q/k/v (NaN in
// every padding slot, so reading one shows), random patterns on random odd schedules, both block sizes,
// per-head and shared patterns, with and without a thread pool; outputs and block mass are poisoned first.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/cpu_block_sparse.h"
#include "attention/pattern_csla.h"
#include "attention/reference.h"
#include "attention_test_util.h"
#include "core/error.h"

using namespace sparvar;

namespace {

Tensor padded_random(const TileLayout& L, int64_t B, int64_t H, int64_t D, std::mt19937& rng) {
  Tensor t = Tensor::empty({B, H, L.num_slots(), D}, DType::F32);
  float* p = t.data_as<float>();
  for (int64_t i = 0; i < B * H; ++i) {
    const std::vector<float> rows = test::random_floats(static_cast<size_t>(L.num_rows() * D), rng);
    rows_to_padded(L, rows, std::span<float>(p + i * L.num_slots() * D, static_cast<size_t>(L.num_slots() * D)), D,
                   NAN);
  }
  return t;
}

// Every row keeps a random non-empty subset of key blocks (per head unless shared).
BlockPattern random_pattern(int nq, int nk, int heads, bool shared, std::mt19937& rng) {
  BlockPattern p;
  p.num_q_blocks = nq;
  p.num_k_blocks = nk;
  p.heads = heads;
  p.shared_across_heads = shared;
  p.row_offsets = {0};
  std::bernoulli_distribution keep(0.4);
  std::uniform_int_distribution<int> any(0, nk - 1);
  for (int r = 0; r < p.num_rows(); ++r) {
    const int forced = any(rng);
    for (int kb = 0; kb < nk; ++kb)
      if (kb == forced || keep(rng)) p.col_blocks.push_back(kb);
    p.row_offsets.push_back(static_cast<int32_t>(p.col_blocks.size()));
  }
  return p;
}

double rel_err(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_floats(), y = b.to_floats();
  double diff = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) != std::isnan(y[i])) return INFINITY;
    diff = std::max(diff, std::abs(double(x[i]) - y[i]));
    ref = std::max(ref, std::abs(double(y[i])));
  }
  return diff / ref;
}

struct Case {
  TileShape q_tile, k_tile;
  bool shared;
  int threads;
};

class CpuBlockSparse : public ::testing::TestWithParam<Case> {};

TEST_P(CpuBlockSparse, MatchesReferenceOnRandomPatterns) {
  const Case c = GetParam();
  std::mt19937 rng(1234 + c.q_tile.size() + c.k_tile.size() + c.shared);
  ThreadPool pool(c.threads);
  for (int trial = 0; trial < 4; ++trial) {
    const ScaleSchedule sched = test::random_schedule(4, 19, rng);
    const int k = 3;
    const int64_t B = 2, H = 3, D = trial % 2 ? 32 : 24;
    const ScaleLayouts l = make_scale_layouts(sched, k, c.q_tile, c.k_tile);
    const BlockSparseLayout layout = make_block_sparse_layout(
        random_pattern(l.q.num_blocks(), l.k.num_blocks(), static_cast<int>(H), c.shared, rng), l.q, l.k);
    const Tensor q = padded_random(l.q, B, H, D, rng), kk = padded_random(l.k, B, H, D, rng),
                 v = padded_random(l.k, B, H, D, rng);
    // Padding rows of q are NaN too: their (never read) output must still be finite zeros, not NaN.
    const float scale = 0.3f + 0.1f * trial;
    Tensor want = Tensor::empty(q.shape(), DType::F32), got = Tensor::empty(q.shape(), DType::F32);
    const Shape mshape{B, H, l.q.num_blocks(), l.k.num_blocks()};
    Tensor want_mass = Tensor::empty(mshape, DType::F32), got_mass = Tensor::empty(mshape, DType::F32);
    std::fill_n(got.data_as<float>(), got.numel(), NAN);
    std::fill_n(got_mass.data_as<float>(), got_mass.numel(), NAN);
    reference_block_sparse_attention(q, kk, v, layout, scale, want, &want_mass);
    cpu_block_sparse_attention(q, kk, v, layout, scale, got, &got_mass, c.threads > 1 ? &pool : nullptr);
    const double e = rel_err(got, want), em = rel_err(got_mass, want_mass);
    EXPECT_LE(e, 1e-5) << "trial " << trial << " " << sched.describe();
    EXPECT_LE(em, 1e-5) << "trial " << trial << " mass";
    // Without mass the output is the same.
    std::fill_n(got.data_as<float>(), got.numel(), NAN);
    cpu_block_sparse_attention(q, kk, v, layout, scale, got, nullptr, &pool);
    EXPECT_LE(rel_err(got, want), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuBlockSparse,
                         ::testing::Values(Case{{8, 8}, {8, 8}, true, 1}, Case{{8, 8}, {8, 8}, false, 3},
                                           Case{{8, 16}, {8, 8}, false, 2}, Case{{8, 16}, {8, 16}, true, 4},
                                           Case{{4, 4}, {8, 16}, false, 2}));

TEST(CpuBlockSparse, ChecksShapes) {
  const ScaleSchedule sched("s", {{1, 1}, {3, 5}});
  const ScaleLayouts l = make_scale_layouts(sched, 1, {8, 8}, {8, 8});
  const BlockSparseLayout layout =
      make_block_sparse_layout(dense_pattern(l.q.num_blocks(), l.k.num_blocks(), 2), l.q, l.k);
  Tensor q = Tensor::zeros({1, 2, l.q.num_slots(), 16}, DType::F32);
  Tensor k = Tensor::zeros({1, 2, l.k.num_slots(), 16}, DType::F32);
  Tensor bad = Tensor::zeros({1, 2, l.k.num_slots() + 1, 16}, DType::F32);
  Tensor out = Tensor::zeros(q.shape(), DType::F32);
  EXPECT_THROW(cpu_block_sparse_attention(q, bad, k, layout, 1.0f, out), Error);
  Tensor q3 = Tensor::zeros({1, 3, l.q.num_slots(), 16}, DType::F32);
  EXPECT_THROW(cpu_block_sparse_attention(q3, k, k, layout, 1.0f, out), Error);
}

}  // namespace

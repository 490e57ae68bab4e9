// Backend::fold_cross_attention + folded_cross_attention (their default, host bodies) against the cross-attention
// they stand for, composed from the CPU backend's ops: q projection, masked attention to the text, output projection
// added to x. Same math re-associated, so fp32 agreement; and the bad inputs refused before anything is written.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "test_cpu_util.h"

using namespace sparvar;
using namespace sparvar::test;

namespace {

struct XattnCase {
  int64_t B, N, H, D, L, Lp;
  std::vector<int32_t> lengths;
};

struct XattnInputs {
  Tensor k, v, wq, bq, wp, bp, h, x;
};

XattnInputs make_inputs(const XattnCase& c, uint64_t seed) {
  const int64_t C = c.H * c.D;
  const float w_scale = 1.0f / std::sqrt(static_cast<float>(C));
  return {randn({c.B, c.H, c.L, c.D}, seed), randn({c.B, c.H, c.L, c.D}, seed + 1),
          randn({C, C}, seed + 2, w_scale), randn({C}, seed + 3, 0.5f),
          randn({C, C}, seed + 4, w_scale), randn({C}, seed + 5, 0.5f),
          randn({c.B, c.N, C}, seed + 6), randn({c.B, c.N, C}, seed + 7)};
}

FoldedText empty_fold(const XattnCase& c) {
  const int64_t C = c.H * c.D, HL = c.H * c.Lp;
  FoldedText f;
  f.kf = poisoned({c.B, HL, C});
  f.kb = poisoned({c.B, HL});
  f.vf = poisoned({c.B, C, HL});
  f.heads = c.H;
  f.keys = c.Lp;
  return f;
}

}  // namespace

TEST_F(CpuBackendTest, FoldedCrossAttentionEqualsAttention) {
  const std::vector<XattnCase> cases = {
      {2, 7, 4, 16, 5, 8, {5, 3}},    // padded keys (Lp > L), a shorter second row
      {1, 1, 2, 32, 8, 8, {8}},       // one token, no padding
      {2, 9, 3, 8, 1, 8, {1, 1}},     // a one-token text
  };
  uint64_t seed = 900;
  for (const XattnCase& c : cases) {
    const std::string what = fmt::format("B{} N{} H{} L{} Lp{}", c.B, c.N, c.H, c.L, c.Lp);
    const XattnInputs in = make_inputs(c, seed);
    seed += 10;
    const int64_t C = c.H * c.D;
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
    // The plain path, as run_block does it without folding.
    Tensor q = poisoned({c.B, c.N, C}), attn = poisoned({c.B, c.N, c.H, c.D}), want = in.x.clone();
    Tensor scratch = poisoned({c.B, c.N, C});
    be->linear(in.h, in.wq, &in.bq, Activation::None, q);
    AttentionParams params;
    params.softmax_scale = scale;
    params.kv_lengths = c.lengths;
    params.q_tokens_major = params.out_tokens_major = true;
    be->attention(q.view({c.B, c.N, c.H, c.D}), in.k, in.v, params, attn);
    be->linear_residual(attn.view({c.B, c.N, C}), in.wp, &in.bp, nullptr, want, scratch);

    FoldedText f = empty_fold(c);
    be->fold_cross_attention(in.k, in.v, c.lengths, in.wq, in.bq, in.wp, f);
    Tensor x = in.x.clone(), scores = poisoned({c.B, c.N, c.H * c.Lp}), probs = poisoned({c.B, c.N, c.H * c.Lp});
    be->folded_cross_attention(in.h, f, scale, &in.bp, x, scores, probs, scratch);
    // Compare the cross-attention's contribution (x - x0), not x itself, which x0 dominates.
    const std::vector<float> x0 = in.x.to_floats(), got = x.to_floats(), ref = want.to_floats();
    Tensor delta = Tensor::empty(x.shape(), DType::F32);
    std::vector<double> ref_delta(ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      delta.data_as<float>()[i] = got[i] - x0[i];
      ref_delta[i] = double(ref[i]) - x0[i];
    }
    EXPECT_LT(rel_error(delta, ref_delta), 2e-5) << what;
    // Padding keys and keys past a row's length are masked: -inf in kb, probability 0.
    const std::vector<float> kb = f.kb.to_floats(), p = probs.to_floats();
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t hh = 0; hh < c.H; ++hh)
        for (int64_t j = 0; j < c.Lp; ++j) {
          const bool masked = j >= c.lengths[static_cast<size_t>(b)];
          EXPECT_EQ(std::isinf(kb[static_cast<size_t>((b * c.H + hh) * c.Lp + j)]), masked) << what;
          if (masked) {
            EXPECT_EQ(p[static_cast<size_t>((b * c.N * c.H + hh) * c.Lp + j)], 0.0f) << what;
          }
        }
  }
}

TEST_F(CpuBackendTest, FoldCrossAttentionBadInputs) {
  const XattnCase c{2, 3, 2, 8, 4, 8, {4, 2}};
  const XattnInputs in = make_inputs(c, 990);
  {
    FoldedText f = empty_fold(c);
    expect_error_message([&] { be->fold_cross_attention(in.k, in.v, {4, 5}, in.wq, in.bq, in.wp, f); },
                         {"fold_cross_attention", "text length of 5", "[1, 4]"});
    expect_error_message([&] { be->fold_cross_attention(in.k, in.v, {4}, in.wq, in.bq, in.wp, f); },
                         {"fold_cross_attention", "1 lengths for 2 text rows"});
    expect_error_message([&] { be->fold_cross_attention(in.k, in.v, c.lengths, in.wp.view({4, 64}), in.bq, in.wp, f); },
                         {"fold_cross_attention", "wq [4,64]"});
    f.keys = 2;
    expect_error_message([&] { be->fold_cross_attention(in.k, in.v, c.lengths, in.wq, in.bq, in.wp, f); },
                         {"fold_cross_attention", "2 heads x 2 keys", "2 x 4"});
    for (float v : f.kf.to_floats()) ASSERT_TRUE(std::isnan(v)) << "kf written by a refused call";
  }
  FoldedText f = empty_fold(c);
  be->fold_cross_attention(in.k, in.v, c.lengths, in.wq, in.bq, in.wp, f);
  Tensor x = in.x.clone(), scores = poisoned({c.B, c.N, c.H * c.Lp}), probs = poisoned({c.B, c.N, c.H * c.Lp});
  Tensor scratch = poisoned({c.B, c.N, c.H * c.D});
  expect_error_message([&] { be->folded_cross_attention(in.h, f, 1.f, &in.bp, x, probs, probs, scratch); },
                       {"folded_cross_attention", "scores"});
  Tensor short_scores = poisoned({c.B, c.N, c.H * c.Lp - 1});
  expect_error_message([&] { be->folded_cross_attention(in.h, f, 1.f, &in.bp, x, short_scores, probs, scratch); },
                       {"folded_cross_attention", "scores", "must be f32"});
  expect_error_message([&] { be->folded_cross_attention(in.h, f, 1.f, &in.bp, x, scores, probs, x); },
                       {"folded_cross_attention"});
  const std::vector<float> x0 = in.x.to_floats(), after = x.to_floats();
  EXPECT_EQ(x0, after) << "x written by a refused call";
}

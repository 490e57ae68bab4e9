// The CPU backend's fused ops against the compositions they replace (bit for bit: the CPU backend promises the
// same f32 roundings), copy_slice, sampling and bits -> codes against naive references, their bad inputs, and
// the timing events.
#include <cmath>
#include <cstring>

#include "core/philox.h"
#include "test_cpu_util.h"

using namespace sparvar;
using namespace sparvar::test;

namespace {

Tensor copy_of(const Tensor& t) { return t.clone(); }

// A QkvRowMap map: a host I32 vector.
Tensor row_map(const std::vector<int32_t>& tokens) {
  Tensor t = Tensor::empty({static_cast<int64_t>(tokens.size())}, DType::I32);
  std::copy(tokens.begin(), tokens.end(), t.data_as<int32_t>());
  return t;
}

// Row `row` of dimension 2 of a [B, H, rows, D] tensor, for batch b and head h.
const float* row_of(const Tensor& t, int64_t b, int64_t h, int64_t row) {
  return t.data_as<float>() + ((b * t.dim(1) + h) * t.dim(2) + row) * t.dim(3);
}

// Row `row` (b, h fixed) of `got` holds the reference's row `token` bit for bit, or zeros for token -1.
void expect_row(const Tensor& got, int64_t b, int64_t h, int64_t row, const Tensor& ref, int32_t token,
                const std::string& what) {
  const int64_t D = got.dim(3);
  const float* g = row_of(got, b, h, row);
  for (int64_t d = 0; d < D; ++d) {
    const float want = token < 0 ? 0.0f : row_of(ref, b, h, token)[d];
    ASSERT_TRUE(std::isfinite(g[d]) && std::memcmp(&g[d], &want, sizeof(float)) == 0)
        << what << ": b " << b << " h " << h << " row " << row << " (token " << token << ") element " << d << ": "
        << g[d] << " vs " << want;
  }
}

// Every element of rows outside [begin, end) of dimension 2 still NaN (never written).
void expect_untouched_outside(const Tensor& t, int64_t begin, int64_t end, const std::string& what) {
  for (int64_t b = 0; b < t.dim(0); ++b)
    for (int64_t h = 0; h < t.dim(1); ++h)
      for (int64_t row = 0; row < t.dim(2); ++row) {
        if (row >= begin && row < end) continue;
        for (int64_t d = 0; d < t.dim(3); ++d)
          ASSERT_TRUE(std::isnan(row_of(t, b, h, row)[d])) << what << ": row " << row << " outside the range written";
      }
}

}  // namespace

TEST_F(CpuBackendTest, LayerNormModulateEqualsLayerNormThenModulate) {
  for (const Shape& s : {Shape{2, 37, 64}, Shape{4, 5, 2048}, Shape{1, 1, 3}}) {
    const Tensor x = randn(s, 1, 2.0f, 0.5f), scale = randn({s[0], s[2]}, 2, 0.3f), shift = randn({s[0], s[2]}, 3);
    Tensor want = poisoned(s);
    be->layer_norm(x, nullptr, nullptr, 1e-6f, want);
    be->adaln_modulate(want, scale, shift, want);
    Tensor got = poisoned(s);
    be->layer_norm_modulate(x, scale, shift, 1e-6f, got);
    expect_identical(got, want, shape_string(s));
    Tensor inplace = copy_of(x);
    be->layer_norm_modulate(inplace, scale, shift, 1e-6f, inplace);
    expect_identical(inplace, want, shape_string(s) + " in place");
  }
}

TEST_F(CpuBackendTest, GatedResidualEqualsGateRowsThenAdd) {
  for (const Shape& s : {Shape{2, 37, 64}, Shape{4, 3, 2048}}) {
    const Tensor x = randn(s, 4), gate = randn({s[0], s[2]}, 5), y = randn(s, 6);
    // What the block did before: y[b] *= gate[b] row by row, then x += y.
    Tensor gated = copy_of(y), want = copy_of(x);
    for (int64_t b = 0; b < s[0]; ++b) {
      Tensor row = gated.slice0(b, b + 1).view({s[1], s[2]});
      be->mul(row, gate.slice0(b, b + 1).view({s[2]}), row);
    }
    be->add(want, gated, want);
    Tensor got = copy_of(x);
    be->gated_residual(got, gate, y);
    expect_identical(got, want, shape_string(s));
    // y may be x itself: x += gate * x
    Tensor self = copy_of(x), self_want = copy_of(x);
    for (int64_t b = 0; b < s[0]; ++b) {
      Tensor row = self_want.slice0(b, b + 1).view({s[1], s[2]});
      Tensor tmp = copy_of(row);
      be->mul(tmp, gate.slice0(b, b + 1).view({s[2]}), tmp);
      be->add(row, tmp, row);
    }
    be->gated_residual(self, gate, self);
    expect_identical(self, self_want, shape_string(s) + " y = x");
  }
}

TEST_F(CpuBackendTest, QkvToAttentionEqualsPermuteNormaliseRopeAndCacheCopy) {
  struct Case { int64_t B, N, H, D, cap, offset; bool scaled; };
  for (const Case& c :
       {Case{2, 9, 3, 16, 20, 5, true}, Case{1, 4, 2, 6, 4, 0, false}, Case{4, 1, 2, 128, 7, 6, true}}) {
    const int64_t C = c.H * c.D;
    const Tensor qkv = randn({c.B, c.N, 3 * C}, 10, 3.0f), q_scale = randn({c.H}, 11, 2.0f);
    const Tensor cos = randn({c.N, c.D / 2}, 12), sin = randn({c.N, c.D / 2}, 13);
    const Tensor cache0 = randn({c.B, c.H, c.cap, c.D}, 14);  // what the slab must not disturb
    const Tensor* scale = c.scaled ? &q_scale : nullptr;
    // The old composition.
    Tensor t = poisoned({3, c.B, c.H, c.N, c.D});
    be->permute(qkv.view({c.B, c.N, 3, c.H, c.D}), {2, 0, 3, 1, 4}, t);
    Tensor q_want = t.slice0(0, 1).view({c.B, c.H, c.N, c.D}), k = t.slice0(1, 2).view({c.B, c.H, c.N, c.D});
    Tensor v = t.slice0(2, 3).view({c.B, c.H, c.N, c.D});
    be->l2_normalize(q_want, 1e-12f, scale, q_want);
    be->l2_normalize(k, 1e-12f, nullptr, k);
    be->rope(q_want, cos, sin, q_want);
    be->rope(k, cos, sin, k);
    Tensor k_want = copy_of(cache0), v_want = copy_of(cache0);
    be->copy_slice(k, k_want, 2, c.offset);
    be->copy_slice(v, v_want, 2, c.offset);
    // The fused op.
    Tensor q = poisoned({c.B, c.H, c.N, c.D}), kc = copy_of(cache0), vc = copy_of(cache0);
    be->qkv_to_attention(qkv, scale, cos, sin, 1e-12f, c.offset, q, kc, vc);
    const std::string what = fmt::format("B={} N={} H={} D={} offset={}", c.B, c.N, c.H, c.D, c.offset);
    expect_identical(q, q_want, what + " q");
    expect_identical(kc, k_want, what + " k cache");
    expect_identical(vc, v_want, what + " v cache");
  }
}

// Row maps: each destination row holds its token's row of the unmapped call (itself checked above), or zeros.
TEST_F(CpuBackendTest, QkvToAttentionRowMapsPermuteAndPad) {
  struct Case { int64_t B, N, H, D, cap, offset; std::vector<int32_t> q_src, kv_src; bool q_map, kv_map; };
  const std::vector<int32_t> q_order = {4, -1, 0, 6, 2, -1, 5, 1, 3, -1}, kv_order = {-1, 3, 3, 0, 6, -1, 5, 2, 1};
  for (const Case& c : {Case{2, 7, 3, 16, 14, 3, q_order, kv_order, true, true},
                        Case{1, 7, 2, 6, 12, 0, q_order, kv_order, true, false},
                        Case{2, 7, 2, 128, 9, 0, q_order, kv_order, false, true},
                        Case{1, 7, 1, 64, 9, 2, {0, 1, 2, 3, 4, 5, 6}, {0, 1, 2, 3, 4, 5, 6}, true, true}}) {
    const Tensor qkv = randn({c.B, c.N, 3 * c.H * c.D}, 15, 3.0f), q_scale = randn({c.H}, 16, 2.0f);
    const Tensor cos = randn({c.N, c.D / 2}, 17), sin = randn({c.N, c.D / 2}, 18);
    // The reference: no maps, the cache rows at 0.
    Tensor q_ref = poisoned({c.B, c.H, c.N, c.D}), k_ref = poisoned({c.B, c.H, c.N, c.D});
    Tensor v_ref = poisoned({c.B, c.H, c.N, c.D});
    be->qkv_to_attention(qkv, &q_scale, cos, sin, 1e-12f, 0, q_ref, k_ref, v_ref);

    const Tensor q_map = row_map(c.q_src), kv_map = row_map(c.kv_src);
    const QkvRowMap rows{c.q_map ? &q_map : nullptr, c.kv_map ? &kv_map : nullptr};
    std::vector<int32_t> q_src = c.q_src, kv_src = c.kv_src;
    if (!c.q_map) q_src = {0, 1, 2, 3, 4, 5, 6};
    if (!c.kv_map) kv_src = {0, 1, 2, 3, 4, 5, 6};
    const int64_t Rq = static_cast<int64_t>(q_src.size()), Rk = static_cast<int64_t>(kv_src.size());
    Tensor q = poisoned({c.B, c.H, Rq, c.D}), kc = poisoned({c.B, c.H, c.cap, c.D});
    Tensor vc = poisoned({c.B, c.H, c.cap, c.D});
    be->qkv_to_attention(qkv, &q_scale, cos, sin, 1e-12f, c.offset, q, kc, vc, &rows);

    const std::string what = fmt::format("B={} N={} H={} D={} offset={} maps {}{}", c.B, c.N, c.H, c.D, c.offset,
                                         c.q_map ? "q" : "", c.kv_map ? "kv" : "");
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < c.H; ++h) {
        for (int64_t r = 0; r < Rq; ++r) expect_row(q, b, h, r, q_ref, q_src[static_cast<size_t>(r)], what + " q");
        for (int64_t r = 0; r < Rk; ++r) {
          const int32_t t = kv_src[static_cast<size_t>(r)];
          expect_row(kc, b, h, c.offset + r, k_ref, t, what + " k cache");
          expect_row(vc, b, h, c.offset + r, v_ref, t, what + " v cache");
        }
      }
    expect_untouched_outside(kc, c.offset, c.offset + Rk, what + " k cache");
    expect_untouched_outside(vc, c.offset, c.offset + Rk, what + " v cache");
  }
}

TEST_F(CpuBackendTest, CopySliceWritesOnlyItsSlab) {
  const Tensor src = randn({2, 3, 4, 5}, 20);
  for (int dim = 0; dim < 4; ++dim) {
    Shape ds = src.shape();
    ds[static_cast<size_t>(dim)] += 3;
    Tensor dst = randn(ds, 21);
    const Tensor before = copy_of(dst);
    be->copy_slice(src, dst, dim, 2);
    const float* d = dst.data_as<float>();
    const float* b = before.data_as<float>();
    const float* s = src.data_as<float>();
    for (int64_t i = 0; i < dst.numel(); ++i) {
      int64_t idx[4], rem = i;
      for (int k = 3; k >= 0; --k) idx[k] = rem % ds[static_cast<size_t>(k)], rem /= ds[static_cast<size_t>(k)];
      const int64_t j = idx[dim] - 2;
      if (j < 0 || j >= src.dim(dim)) {
        ASSERT_EQ(d[i], b[i]) << "dim " << dim << " element " << i << " outside the slab changed";
        continue;
      }
      idx[dim] = j;
      const int64_t si = ((idx[0] * 3 + idx[1]) * 4 + idx[2]) * 5 + idx[3];
      ASSERT_EQ(d[i], s[si]) << "dim " << dim << " element " << i;
    }
  }
  // u8 (bits) too
  Tensor bits = be->empty({2, 4}, DType::U8), into = be->empty({2, 6}, DType::U8);
  std::memset(bits.data(), 1, bits.nbytes());
  std::memset(into.data(), 7, into.nbytes());
  be->copy_slice(bits, into, 1, 1);
  const std::vector<float> got = into.to_floats();
  EXPECT_EQ(got, (std::vector<float>{7, 1, 1, 1, 1, 7, 7, 1, 1, 1, 1, 7}));
}

TEST_F(CpuBackendTest, SampleBitsFollowTheSamplingRules) {
  const int64_t B = 2, N = 33, D = 8, count = B * N * D;
  const Tensor raw = randn({2 * B, N, 2 * D}, 30, 3.0f);
  BitSampling p;
  p.tau = 0.8f;
  p.cfg = 3.0f;
  p.top_k = 900;
  p.top_p = 0.97f;
  p.seed = 99;
  p.stream = 4;
  Tensor bits = be->empty({B, N, D}, DType::U8), logits = poisoned({B, N, 2 * D});
  be->sample_bits(raw, p, nullptr, &bits, &logits);
  std::vector<float> u(static_cast<size_t>(count));
  PhiloxStream(p.seed, p.stream).fill_uniform(u.data(), static_cast<uint64_t>(count));
  const float* r = raw.data_as<float>();
  const float* l = logits.data_as<float>();
  const uint8_t* b = bits.data_as<uint8_t>();
  int near = 0;
  for (int64_t i = 0; i < count; ++i) {
    double lg[2];
    for (int k = 0; k < 2; ++k) {
      lg[k] = 3.0 * r[2 * i + k] / 0.8 - 2.0 * r[2 * count + 2 * i + k] / 0.8;
      ASSERT_NEAR(l[2 * i + k], lg[k], 1e-5 * (1.0 + std::fabs(lg[k]))) << i;
    }
    double p0 = 1.0 / (1.0 + std::exp(lg[1] - lg[0]));
    if (std::min(p0, 1.0 - p0) <= 0.03) p0 = p0 > 0.5 ? 1.0 : 0.0;  // top-p 0.97 drops the unlikely bit
    if (std::fabs(u[static_cast<size_t>(i)] - p0) < 1e-5) {
      ++near;
      continue;
    }
    ASSERT_EQ(b[i], u[static_cast<size_t>(i)] >= p0 ? 1 : 0) << i << " p0 " << p0;
  }
  EXPECT_LT(near, 3);
  // The same uniforms supplied give the same bits; logits-only and bits-only calls agree with the full one.
  Tensor u_t = Tensor::from_floats({B, N, D}, u), bits2 = be->empty({B, N, D}, DType::U8);
  be->sample_bits(raw, p, &u_t, &bits2, nullptr);
  EXPECT_EQ(std::memcmp(bits.data(), bits2.data(), bits.nbytes()), 0);
  Tensor logits2 = poisoned({B, N, 2 * D});
  be->sample_bits(raw, p, nullptr, nullptr, &logits2);
  expect_identical(logits2, logits, "logits only");
  // Without CFG rows: logits = raw / tau; top-k 1 keeps the larger logit (bit = larger one, whatever u).
  BitSampling k1;
  k1.tau = 2.0f;
  k1.top_k = 1;
  const Tensor raw1 = randn({B, N, 2 * D}, 31);
  Tensor bits1 = be->empty({B, N, D}, DType::U8), logits1 = poisoned({B, N, 2 * D});
  be->sample_bits(raw1, k1, nullptr, &bits1, &logits1);
  const float* r1 = raw1.data_as<float>();
  for (int64_t i = 0; i < count; ++i) {
    ASSERT_EQ(logits1.data_as<float>()[2 * i], r1[2 * i] / 2.0f);
    ASSERT_EQ(bits1.data_as<uint8_t>()[i], r1[2 * i + 1] > r1[2 * i] ? 1 : 0) << i;
  }
}

TEST_F(CpuBackendTest, BitsToCodesPlacesPatchedChannels) {
  for (int p : {1, 2}) {
    const int64_t B = 2, h = 3, w = 5, d = 4, D = d * p * p;
    Tensor bits = be->empty({B, h * w, D}, DType::U8);
    uint8_t* pb = bits.data_as<uint8_t>();
    for (int64_t i = 0; i < bits.numel(); ++i) pb[i] = static_cast<uint8_t>((i * 7 + i / 3) % 2);
    Tensor codes = poisoned({B, d, h * p, w * p});
    be->bits_to_codes(bits, p, -0.5f, 0.25f, codes);
    const float* pc = codes.data_as<float>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < d; ++c)
        for (int64_t Y = 0; Y < h * p; ++Y)
          for (int64_t X = 0; X < w * p; ++X) {
            const uint8_t bit = pb[(b * h * w + (Y / p) * w + X / p) * D + c * p * p + (Y % p) * p + X % p];
            ASSERT_EQ(pc[((b * d + c) * h * p + Y) * w * p + X], bit ? 0.25f : -0.5f) << p << " " << b << c << Y << X;
          }
  }
}

TEST_F(CpuBackendTest, FusedOpsRejectBadInputsBeforeWriting) {
  auto expect_unwritten = [](const Tensor& out, const std::string& what) {
    for (float v : out.to_floats()) ASSERT_TRUE(std::isnan(v)) << what << ": output written before validation";
  };
  auto expect_throw_untouched = [&](auto&& fn, const Tensor& out, const char* what) {
    EXPECT_THROW(fn(), Error) << what;
    expect_unwritten(out, what);
  };
  const Tensor x = randn({2, 3, 8}, 40), bad_mod = randn({3, 8}, 41), mod = randn({2, 8}, 42);
  Tensor y = poisoned({2, 3, 8});
  expect_throw_untouched([&] { be->layer_norm_modulate(x, bad_mod, mod, 1e-6f, y); }, y, "ln_modulate scale");
  expect_throw_untouched([&] { be->gated_residual(y, bad_mod, x); }, y, "gated_residual gate");
  Tensor q = poisoned({1, 2, 4, 4}), cache = poisoned({1, 2, 6, 4});
  const Tensor qkv = randn({1, 4, 24}, 43), table = randn({4, 2}, 44);
  expect_throw_untouched([&] { be->qkv_to_attention(qkv, nullptr, table, table, 1e-12f, 3, q, cache, cache); }, q,
                         "qkv past capacity");
  Tensor cache2 = poisoned({1, 2, 6, 4});
  expect_throw_untouched([&] { be->qkv_to_attention(qkv, nullptr, table, table, 1e-12f, 0, q, cache, cache); }, q,
                         "qkv k and v caches the same tensor");
  expect_throw_untouched([&] { be->copy_slice(qkv.view({1, 4, 6, 4}), cache2, 2, 0); }, cache2, "copy_slice shape");
  // Row maps (qkv: 4 tokens; q [1, 2, 4, 4]; caches of 6 rows): rejected before anything is written, the message
  // naming the map and the bad entry.
  Tensor k6 = poisoned({1, 2, 6, 4}), v6 = poisoned({1, 2, 6, 4});
  auto expect_map_rejected = [&](const Tensor& q_src, const Tensor& kv_src, int64_t offset, const std::string& says) {
    const QkvRowMap rows{&q_src, &kv_src};
    try {
      be->qkv_to_attention(qkv, nullptr, table, table, 1e-12f, offset, q, k6, v6, &rows);
      ADD_FAILURE() << says << ": not rejected";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
    for (const Tensor* out : {&q, &k6, &v6}) expect_unwritten(*out, says);
  };
  const Tensor ok4 = row_map({3, -1, 0, 1});
  expect_map_rejected(row_map({3, -1, 0}), ok4, 0, "q has shape [1,2,4,4], expected [1,2,3,4]");
  expect_map_rejected(ok4, row_map({0, 4, 1}), 0, "kv_src[1] = 4 is neither a token of [0, 4) nor -1");
  expect_map_rejected(row_map({0, -2, 1, 2}), ok4, 0, "q_src[1] = -2");
  expect_map_rejected(ok4, row_map({0, 1, 2, 3, -1}), 2, "cache rows [2, 7) do not fit the cache's 6 rows");
  expect_map_rejected(ok4, randn({4}, 46), 0, "kv_src f32[4] on cpu must be a 1-D i32 tensor");
  expect_map_rejected(row_map({0, 1, 2, 3}).view({2, 2}), ok4, 0, "q_src i32[2,2] on cpu must be a 1-D i32 tensor");
  Tensor logits = poisoned({2, 3, 8});
  expect_throw_untouched([&] { be->sample_bits(randn({3, 3, 8}, 45), BitSampling{}, nullptr, nullptr, &logits); },
                         logits, "sample_bits raw rows");
  Tensor codes = poisoned({1, 2, 4, 4});
  Tensor bits = be->empty({1, 5, 8}, DType::U8);
  expect_throw_untouched([&] { be->bits_to_codes(bits, 2, 0.0f, 1.0f, codes); }, codes, "bits_to_codes shape");
  expect_throw_untouched([&] { be->bits_to_codes(bits, 3, 0.0f, 1.0f, codes); }, codes, "bits_to_codes patch");
  EXPECT_THROW(be->empty({2}, DType::I32), Error);
}

TEST_F(CpuBackendTest, TimingEventsMeasureWallTime) {
  auto a = be->record_event();
  Tensor x = randn({256, 256}, 50);
  for (int i = 0; i < 10; ++i) be->add(x, x, x);
  auto b = be->record_event();
  be->synchronize();
  EXPECT_GE(b->ms_since(*a), 0.0);
  EXPECT_LE(a->ms_since(*b), 0.0);
}

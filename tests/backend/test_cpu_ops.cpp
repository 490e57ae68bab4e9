// Every CPU op against an independent, naive double-precision implementation written here.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "test_cpu_util.h"

using namespace sparvar;
using namespace sparvar::test;

namespace {

double ref_act(double x, Activation act) {
  switch (act) {
    case Activation::GeluTanh:
      return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::Silu:
      return x / (1.0 + std::exp(-x));
    default:
      return x;
  }
}

std::vector<double> ref_linear(const Tensor& x, const Tensor& w, const Tensor* b, Activation act) {
  const int64_t K = x.dim(-1), N = w.dim(0), M = x.numel() / K;
  const float* px = x.data_as<float>();
  const float* pw = w.data_as<float>();
  std::vector<double> y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = b ? b->data_as<float>()[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(px[m * K + k]) * pw[n * K + k];
      y[static_cast<size_t>(m * N + n)] = ref_act(s, act);
    }
  return y;
}

}  // namespace

TEST_F(CpuBackendTest, Memory) {
  Tensor host = Tensor::from_floats({2, 3}, {1, -2, 3, 4.5f, 5, -6}, DType::BF16);
  Tensor dev = be->upload(host, DType::F32);
  EXPECT_EQ(dev.dtype(), DType::F32);
  EXPECT_EQ(dev.to_floats(), host.to_floats());
  Tensor back = be->download(dev);
  EXPECT_NE(back.data(), dev.data());
  EXPECT_EQ(back.to_floats(), host.to_floats());
  Tensor e = be->empty({4, 5}, DType::F32);
  EXPECT_EQ(e.shape(), (Shape{4, 5}));
  Tensor dst = poisoned({3, 2});
  be->copy(dev, dst);
  EXPECT_EQ(dst.to_floats(), host.to_floats());
  Tensor bf = Tensor::empty({6}, DType::BF16);  // copy converts between float dtypes
  be->copy(dev, bf);
  EXPECT_EQ(bf.to_floats(), host.to_floats());
  be->synchronize();
  EXPECT_EQ(be->device(), Device::CPU);
  EXPECT_NE(be->name().find("cpu"), std::string::npos);
}

TEST_F(CpuBackendTest, Linear) {
  struct Case {
    Shape x;
    int64_t n;
    bool bias;
    Activation act;
  };
  for (const Case& c : {Case{{7, 33}, 19, true, Activation::None}, Case{{2, 5, 64}, 48, true, Activation::GeluTanh},
                         Case{{1, 16}, 130, false, Activation::Silu}, Case{{3, 4, 2, 9}, 5, false, Activation::None}}) {
    const int64_t K = c.x.back();
    Tensor x = randn(c.x, 1), w = randn({c.n, K}, 2, 0.3f), b = randn({c.n}, 3);
    Shape ys = c.x;
    ys.back() = c.n;
    Tensor y = poisoned(ys);
    be->linear(x, w, c.bias ? &b : nullptr, c.act, y);
    EXPECT_CLOSE(y, ref_linear(x, w, c.bias ? &b : nullptr, c.act)) << shape_string(c.x) << " n=" << c.n;
  }
}

TEST_F(CpuBackendTest, Activation) {
  Tensor x = randn({3, 1000}, 4, 3.0f);
  for (Activation act : {Activation::None, Activation::GeluTanh, Activation::Silu}) {
    std::vector<double> ref;
    for (float v : x.to_floats()) ref.push_back(ref_act(v, act));
    Tensor y = poisoned(x.shape());
    be->activation(x, act, y);
    EXPECT_CLOSE(y, ref);
    Tensor inplace = x.clone();
    be->activation(inplace, act, inplace);
    EXPECT_CLOSE(inplace, ref);
  }
}

TEST_F(CpuBackendTest, AddMulBroadcast) {
  Tensor a = randn({4, 3, 50}, 5);
  for (const Shape& bs : {Shape{4, 3, 50}, Shape{3, 50}, Shape{50}, Shape{}}) {
    Tensor b = randn(bs, 6);
    std::vector<float> fa = a.to_floats(), fb = b.to_floats();
    std::vector<double> sum, prod;
    for (size_t i = 0; i < fa.size(); ++i) {
      sum.push_back(static_cast<double>(fa[i]) + fb[i % fb.size()]);
      prod.push_back(static_cast<double>(fa[i]) * fb[i % fb.size()]);
    }
    Tensor y = poisoned(a.shape());
    be->add(a, b, y);
    EXPECT_CLOSE(y, sum) << shape_string(bs);
    y = poisoned(a.shape());
    be->mul(a, b, y);
    EXPECT_CLOSE(y, prod) << shape_string(bs);
    Tensor inplace = a.clone();
    be->add(inplace, b, inplace);
    EXPECT_CLOSE(inplace, sum);
  }
}

TEST_F(CpuBackendTest, LayerNormAndRmsNorm) {
  for (int64_t C : {1, 7, 64, 1000}) {
    Tensor x = randn({3, 5, C}, 7, 2.0f, 0.7f), w = randn({C}, 8), b = randn({C}, 9);
    const int64_t rows = 15;
    const float* px = x.data_as<float>();
    std::vector<double> ln(static_cast<size_t>(rows * C)), ln_plain(ln.size()), rms(ln.size()), rms_plain(ln.size());
    for (int64_t r = 0; r < rows; ++r) {
      double mean = 0, sq = 0, var = 0;
      for (int64_t c = 0; c < C; ++c) mean += px[r * C + c], sq += double(px[r * C + c]) * px[r * C + c];
      mean /= C;
      for (int64_t c = 0; c < C; ++c) var += (px[r * C + c] - mean) * (px[r * C + c] - mean);
      var /= C;
      for (int64_t c = 0; c < C; ++c) {
        const auto i = static_cast<size_t>(r * C + c);
        ln_plain[i] = (px[i] - mean) / std::sqrt(var + 1e-5);
        ln[i] = ln_plain[i] * w.data_as<float>()[c] + b.data_as<float>()[c];
        rms_plain[i] = px[i] / std::sqrt(sq / C + 1e-6);
        rms[i] = rms_plain[i] * w.data_as<float>()[c];
      }
    }
    Tensor y = poisoned(x.shape());
    be->layer_norm(x, &w, &b, 1e-5f, y);
    EXPECT_CLOSE(y, ln) << C;
    y = poisoned(x.shape());
    be->layer_norm(x, nullptr, nullptr, 1e-5f, y);
    if (C > 1) {  // C == 1: the reference is all zeros, relative error undefined
      EXPECT_CLOSE(y, ln_plain) << C;
    }
    y = poisoned(x.shape());
    be->rms_norm(x, &w, 1e-6f, y);
    EXPECT_CLOSE(y, rms) << C;
    Tensor inplace = x.clone();
    be->rms_norm(inplace, nullptr, 1e-6f, inplace);
    EXPECT_CLOSE(inplace, rms_plain) << C;
  }
}

TEST_F(CpuBackendTest, AdalnModulate) {
  const int64_t B = 2, N = 17, C = 40;
  Tensor x = randn({B, N, C}, 10), scale = randn({B, C}, 11, 0.5f), shift = randn({B, C}, 12);
  std::vector<double> ref;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        ref.push_back(double(x.data_as<float>()[(b * N + n) * C + c]) * (1.0 + scale.data_as<float>()[b * C + c]) +
                      shift.data_as<float>()[b * C + c]);
  Tensor y = poisoned(x.shape());
  be->adaln_modulate(x, scale, shift, y);
  EXPECT_CLOSE(y, ref);
  be->adaln_modulate(x, scale, shift, x);
  EXPECT_CLOSE(x, ref);
}

TEST_F(CpuBackendTest, Softmax) {
  for (int64_t C : {1, 5, 300}) {
    Tensor x = randn({4, 3, C}, 13, 4.0f, 50.0f);  // large offset: max subtraction matters
    std::vector<double> ref;
    const float* px = x.data_as<float>();
    for (int64_t r = 0; r < 12; ++r) {
      double mx = -1e300, sum = 0;
      for (int64_t c = 0; c < C; ++c) mx = std::max(mx, double(px[r * C + c]));
      for (int64_t c = 0; c < C; ++c) sum += std::exp(px[r * C + c] - mx);
      for (int64_t c = 0; c < C; ++c) ref.push_back(std::exp(px[r * C + c] - mx) / sum);
    }
    Tensor y = poisoned(x.shape());
    be->softmax(x, y);
    EXPECT_CLOSE(y, ref) << C;
    be->softmax(x, x);
    EXPECT_CLOSE(x, ref) << C;
  }
}

TEST_F(CpuBackendTest, L2Normalize) {
  const int64_t B = 2, H = 3, N = 5, D = 16;
  Tensor x = randn({B, H, N, D}, 14), hs = randn({H}, 15, 1.0f, 2.0f);
  std::vector<double> ref, ref_plain;
  const float* px = x.data_as<float>();
  for (int64_t r = 0; r < B * H * N; ++r) {
    double sq = 0;
    for (int64_t d = 0; d < D; ++d) sq += double(px[r * D + d]) * px[r * D + d];
    for (int64_t d = 0; d < D; ++d) {
      ref_plain.push_back(px[r * D + d] / std::sqrt(sq));
      ref.push_back(ref_plain.back() * hs.data_as<float>()[(r / N) % H]);
    }
  }
  Tensor y = poisoned(x.shape());
  be->l2_normalize(x, 1e-12f, &hs, y);
  EXPECT_CLOSE(y, ref);
  be->l2_normalize(x, 1e-12f, nullptr, x);
  EXPECT_CLOSE(x, ref_plain);
  // eps bounds the divisor from below: a tiny vector is scaled by 1/eps, not normalised.
  Tensor tiny = Tensor::from_floats({1, 1, 1, 2}, {3e-4f, -4e-4f});
  Tensor t_out = poisoned(tiny.shape());
  be->l2_normalize(tiny, 1e-2f, nullptr, t_out);
  EXPECT_CLOSE(t_out, (std::vector<double>{3e-2, -4e-2}));
}

TEST_F(CpuBackendTest, Rope) {
  const int64_t B = 2, H = 3, N = 7, D = 12;
  Tensor x = randn({B, H, N, D}, 16), angle = randn({N, D / 2}, 17, 2.0f);
  std::vector<float> c, s;
  for (float a : angle.to_floats()) c.push_back(std::cos(a)), s.push_back(std::sin(a));
  Tensor cos = Tensor::from_floats({N, D / 2}, c), sin = Tensor::from_floats({N, D / 2}, s);
  std::vector<double> ref;
  const float* px = x.data_as<float>();
  for (int64_t r = 0; r < B * H * N; ++r)
    for (int64_t i = 0; i < D / 2; ++i) {
      const double x0 = px[r * D + 2 * i], x1 = px[r * D + 2 * i + 1];
      const double cc = c[static_cast<size_t>((r % N) * (D / 2) + i)], ss = s[static_cast<size_t>((r % N) * (D / 2) + i)];
      ref.push_back(cc * x0 - ss * x1);
      ref.push_back(ss * x0 + cc * x1);
    }
  Tensor y = poisoned(x.shape());
  be->rope(x, cos, sin, y);
  EXPECT_CLOSE(y, ref);
  be->rope(x, cos, sin, x);
  EXPECT_CLOSE(x, ref);
}

TEST_F(CpuBackendTest, Permute) {
  Tensor x = randn({2, 3, 4, 5, 1, 6}, 18);
  const std::vector<std::vector<int>> perms = {{5, 4, 3, 2, 1, 0}, {0, 2, 1, 3, 4, 5}, {3, 0, 5, 1, 4, 2}};
  for (const auto& perm : perms) {
    Shape ys;
    for (int p : perm) ys.push_back(x.shape()[static_cast<size_t>(p)]);
    Tensor y = poisoned(ys);
    be->permute(x, perm, y);
    // y[i0..i5] = x[j] with j[perm[d]] = i[d].
    std::vector<double> ref(static_cast<size_t>(x.numel()));
    std::vector<int64_t> idx(6, 0);
    const float* px = x.data_as<float>();
    for (int64_t o = 0; o < y.numel(); ++o) {
      int64_t rem = o;
      for (int d = 5; d >= 0; --d) idx[static_cast<size_t>(d)] = rem % ys[static_cast<size_t>(d)], rem /= ys[static_cast<size_t>(d)];
      std::vector<int64_t> src(6);
      for (int d = 0; d < 6; ++d) src[static_cast<size_t>(perm[static_cast<size_t>(d)])] = idx[static_cast<size_t>(d)];
      int64_t flat = 0;
      for (int d = 0; d < 6; ++d) flat = flat * x.shape()[static_cast<size_t>(d)] + src[static_cast<size_t>(d)];
      ref[static_cast<size_t>(o)] = px[flat];
    }
    EXPECT_EQ(rel_error(y, ref), 0.0);
  }
  Tensor m = Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor mt = poisoned({3, 2});
  be->permute(m, {1, 0}, mt);
  EXPECT_EQ(mt.to_floats(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

namespace {
std::vector<double> ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p) {
  const int64_t B = q.dim(0), H = q.dim(1), Nq = q.dim(2), D = q.dim(3), Nk = k.dim(2);
  std::vector<double> out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Nq; ++i) {
        int64_t visible = Nk;
        for (size_t s = 0; s < p.mask.q_ends.size(); ++s)
          if (i < p.mask.q_ends[s]) {
            visible = p.mask.k_ends[s];
            break;
          }
        if (!p.kv_lengths.empty()) visible = std::min<int64_t>(visible, p.kv_lengths[static_cast<size_t>(b)]);
        const float* qi = q.data_as<float>() + ((b * H + h) * Nq + i) * D;
        std::vector<double> logit(static_cast<size_t>(visible));
        double mx = -1e300;
        for (int64_t j = 0; j < visible; ++j) {
          const float* kj = k.data_as<float>() + ((b * H + h) * Nk + j) * D;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += double(qi[d]) * kj[d];
          logit[static_cast<size_t>(j)] = p.softmax_scale * dot;
          mx = std::max(mx, logit[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (double& l : logit) sum += (l = std::exp(l - mx));
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < visible; ++j)
            acc += logit[static_cast<size_t>(j)] / sum * v.data_as<float>()[((b * H + h) * Nk + j) * D + d];
          out.push_back(acc);
        }
      }
  return out;
}
}  // namespace

TEST_F(CpuBackendTest, Attention) {
  struct Case {
    int64_t B, H, Nq, Nk, D;
    ScaleMask mask;
    std::vector<int32_t> kv;
  };
  const std::vector<Case> cases = {
      {2, 3, 9, 13, 16, {}, {}},
      {2, 2, 37, 37, 8, {{1, 5, 14, 37}, {1, 5, 14, 37}}, {}},  // teacher-forced block-causal over scales
      {2, 2, 5, 11, 32, {}, {3, 11}},                           // cross-attention to variable-length text
      {2, 1, 14, 14, 8, {{1, 5, 14}, {1, 5, 14}}, {2, 9}},      // both at once
      {1, 2, 300, 300, 8, {{4, 100, 300}, {4, 100, 300}}, {}},  // more rows than one query block
      {1, 1, 6, 6, 4, {{0, 2, 2, 6}, {0, 2, 5, 6}}, {}},        // empty scales are allowed
  };
  for (const Case& c : cases) {
    Tensor q = randn({c.B, c.H, c.Nq, c.D}, 20, 2.0f), k = randn({c.B, c.H, c.Nk, c.D}, 21, 2.0f),
           v = randn({c.B, c.H, c.Nk, c.D}, 22);
    AttentionParams p;
    p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(c.D));
    p.mask = c.mask;
    p.kv_lengths = c.kv;
    Tensor out = poisoned(q.shape());
    be->attention(q, k, v, p, out);
    EXPECT_CLOSE(out, ref_attention(q, k, v, p)) << "Nq=" << c.Nq << " Nk=" << c.Nk;
  }
}

// Token-major q / out ([B, N, H, D]) give the head-major result, transposed.
TEST_F(CpuBackendTest, AttentionTokensMajor) {
  const int64_t B = 2, H = 3, Nq = 7, Nk = 11, D = 16;
  Tensor q = randn({B, H, Nq, D}, 30, 2.0f), k = randn({B, H, Nk, D}, 31, 2.0f), v = randn({B, H, Nk, D}, 32);
  AttentionParams p;
  p.softmax_scale = 0.25f;
  p.kv_lengths = {11, 4};
  const std::vector<double> want = ref_attention(q, k, v, p);
  std::vector<double> want_tm(want.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t n = 0; n < Nq; ++n)
        for (int64_t d = 0; d < D; ++d)
          want_tm[size_t(((b * Nq + n) * H + h) * D + d)] = want[size_t(((b * H + h) * Nq + n) * D + d)];
  Tensor q_tm = poisoned({B, Nq, H, D});
  be->permute(q, {0, 2, 1, 3}, q_tm);
  for (const bool q_tokens_major : {false, true})
    for (const bool out_tokens_major : {false, true}) {
      AttentionParams tp = p;
      tp.q_tokens_major = q_tokens_major;
      tp.out_tokens_major = out_tokens_major;
      Tensor out = poisoned(out_tokens_major ? Shape{B, Nq, H, D} : Shape{B, H, Nq, D});
      be->attention(q_tokens_major ? q_tm : q, k, v, tp, out);
      EXPECT_CLOSE(out, out_tokens_major ? want_tm : want) << q_tokens_major << out_tokens_major;
    }
  // A head-major q handed over as token-major has the wrong shape for the output it names.
  AttentionParams bad = p;
  bad.q_tokens_major = bad.out_tokens_major = true;
  Tensor out = poisoned({B, H, Nq, D});
  EXPECT_THROW(be->attention(q_tm, k, v, bad, out), Error);
}

// Keys and values no query row can see (past its kv length and mask end: the unfilled tail of a KV cache,
// padded text) may hold anything, NaN included; a masked key given weight 0 but still multiplied in (0 * NaN)
// would turn the whole output row NaN. Regression: the pipeline's KV cache tail was read this way.
TEST_F(CpuBackendTest, AttentionNeverReadsMaskedKeys) {
  struct Case {
    int64_t B, H, Nq, Nk, D;
    ScaleMask mask;
    std::vector<int32_t> kv;
  };
  const std::vector<Case> cases = {
      {2, 2, 1, 20, 8, {}, {1, 1}},                              // scale 0 of generation: one key of 20 filled
      {2, 2, 4, 20, 8, {}, {5, 5}},                              // scale 1
      {2, 2, 5, 11, 32, {}, {3, 11}},                            // padded text
      {1, 2, 300, 320, 8, {{4, 100, 300}, {4, 100, 300}}, {}},   // mask, several query blocks, tail unused
      {2, 1, 14, 20, 8, {{1, 5, 14}, {1, 5, 14}}, {2, 9}},       // both at once
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const Case& c : cases) {
    Tensor q = randn({c.B, c.H, c.Nq, c.D}, 30, 2.0f), k = randn({c.B, c.H, c.Nk, c.D}, 31, 2.0f),
           v = randn({c.B, c.H, c.Nk, c.D}, 32);
    AttentionParams p;
    p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(c.D));
    p.mask = c.mask;
    p.kv_lengths = c.kv;
    const std::vector<double> ref = ref_attention(q, k, v, p);
    const int64_t mask_end = c.mask.empty() ? c.Nk : *std::max_element(c.mask.k_ends.begin(), c.mask.k_ends.end());
    for (int64_t b = 0; b < c.B; ++b) {
      const int64_t seen = c.kv.empty() ? mask_end : std::min<int64_t>(mask_end, c.kv[static_cast<size_t>(b)]);
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t j = seen; j < c.Nk; ++j)
          for (int64_t d = 0; d < c.D; ++d) {
            const int64_t i = ((b * c.H + h) * c.Nk + j) * c.D + d;
            k.data_as<float>()[i] = v.data_as<float>()[i] = nan;
          }
    }
    Tensor out = poisoned(q.shape());
    be->attention(q, k, v, p, out);
    EXPECT_CLOSE(out, ref) << "Nq=" << c.Nq << " Nk=" << c.Nk;
  }
}

TEST(CpuBackendPoison, EmptyBuffersAreNaN) {
  auto poisoning = make_cpu_backend(1, /*poison_allocations=*/true);
  const std::vector<float> e = poisoning->empty({3, 5}, DType::F32).to_floats();
  EXPECT_TRUE(std::all_of(e.begin(), e.end(), [](float x) { return std::isnan(x); }));
  // Only empty() poisons: uploads and op outputs are ordinary.
  const Tensor up = poisoning->upload(Tensor::from_floats({2}, {1, 2}), DType::F32);
  EXPECT_EQ(up.to_floats(), (std::vector<float>{1, 2}));
}

TEST_F(CpuBackendTest, Conv2d) {
  struct Case {
    Shape x;
    int64_t cout, kh, kw;
    int stride, pad;
    bool bias;
  };
  for (const Case& c : {Case{{2, 3, 9, 8}, 5, 3, 3, 1, 1, true}, Case{{1, 4, 10, 7}, 6, 3, 3, 2, 1, false},
                         Case{{2, 8, 5, 6}, 3, 1, 1, 1, 0, true}, Case{{1, 2, 6, 9}, 4, 4, 2, 3, 2, true},
                         Case{{1, 3, 4, 4}, 2, 4, 4, 1, 0, true}}) {
    const int64_t N = c.x[0], Cin = c.x[1], H = c.x[2], W = c.x[3];
    const int64_t Ho = (H + 2 * c.pad - c.kh) / c.stride + 1, Wo = (W + 2 * c.pad - c.kw) / c.stride + 1;
    Tensor x = randn(c.x, 23), w = randn({c.cout, Cin, c.kh, c.kw}, 24, 0.3f), b = randn({c.cout}, 25);
    std::vector<double> ref;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t co = 0; co < c.cout; ++co)
        for (int64_t oy = 0; oy < Ho; ++oy)
          for (int64_t ox = 0; ox < Wo; ++ox) {
            double s = c.bias ? b.data_as<float>()[co] : 0.0;
            for (int64_t ci = 0; ci < Cin; ++ci)
              for (int64_t ky = 0; ky < c.kh; ++ky)
                for (int64_t kx = 0; kx < c.kw; ++kx) {
                  const int64_t iy = oy * c.stride - c.pad + ky, ix = ox * c.stride - c.pad + kx;
                  if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                  s += double(x.data_as<float>()[((n * Cin + ci) * H + iy) * W + ix]) *
                       w.data_as<float>()[((co * Cin + ci) * c.kh + ky) * c.kw + kx];
                }
            ref.push_back(s);
          }
    Tensor y = poisoned({N, c.cout, Ho, Wo});
    be->conv2d(x, w, c.bias ? &b : nullptr, c.stride, c.pad, y);
    EXPECT_CLOSE(y, ref) << shape_string(c.x) << " k" << c.kh << "x" << c.kw;
  }
}

TEST_F(CpuBackendTest, GroupNorm) {
  const int64_t N = 2, C = 12, H = 5, W = 3;
  for (int groups : {1, 3, 12}) {
    Tensor x = randn({N, C, H, W}, 26, 1.5f, -0.4f), w = randn({C}, 27), b = randn({C}, 28);
    const int64_t per = C / groups, len = per * H * W;
    std::vector<double> ref(static_cast<size_t>(x.numel()));
    const float* px = x.data_as<float>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < groups; ++g) {
        double mean = 0, var = 0;
        for (int64_t c = g * per; c < (g + 1) * per; ++c)
          for (int64_t i = 0; i < H * W; ++i) mean += px[(n * C + c) * H * W + i];
        mean /= len;
        for (int64_t c = g * per; c < (g + 1) * per; ++c)
          for (int64_t i = 0; i < H * W; ++i) var += std::pow(px[(n * C + c) * H * W + i] - mean, 2);
        var /= len;
        for (int64_t c = g * per; c < (g + 1) * per; ++c)
          for (int64_t i = 0; i < H * W; ++i) {
            const int64_t at = (n * C + c) * H * W + i;
            ref[static_cast<size_t>(at)] =
                (px[at] - mean) / std::sqrt(var + 1e-6) * w.data_as<float>()[c] + b.data_as<float>()[c];
          }
      }
    Tensor y = poisoned(x.shape());
    be->group_norm(x, groups, &w, &b, 1e-6f, y);
    EXPECT_CLOSE(y, ref) << groups;
    be->group_norm(x, groups, &w, &b, 1e-6f, x);
    EXPECT_CLOSE(x, ref) << groups;
  }
}

namespace {
// Direct 2-D evaluation of torch's interpolate formulas (the backend uses separable tap tables).
double ref_resample_at(const float* plane, int64_t H, int64_t W, int64_t Ho, int64_t Wo, ResampleMode mode,
                       int64_t oy, int64_t ox) {
  auto at = [&](int64_t y, int64_t x) {
    return double(plane[std::clamp<int64_t>(y, 0, H - 1) * W + std::clamp<int64_t>(x, 0, W - 1)]);
  };
  const float sy = float(H) / float(Ho), sx = float(W) / float(Wo);
  switch (mode) {
    case ResampleMode::Nearest:
      return at(std::min<int64_t>(int64_t(std::floor(float(oy) * sy)), H - 1),
                std::min<int64_t>(int64_t(std::floor(float(ox) * sx)), W - 1));
    case ResampleMode::Bilinear: {
      const double ry = std::max(sy * (oy + 0.5) - 0.5, 0.0), rx = std::max(sx * (ox + 0.5) - 0.5, 0.0);
      const int64_t y0 = int64_t(ry), x0 = int64_t(rx);
      const double ty = ry - y0, tx = rx - x0;
      return (1 - ty) * ((1 - tx) * at(y0, x0) + tx * at(y0, x0 + 1)) +
             ty * ((1 - tx) * at(y0 + 1, x0) + tx * at(y0 + 1, x0 + 1));
    }
    case ResampleMode::Bicubic: {
      auto kernel = [](double d) {  // Keys cubic, A = -0.75, as a function of the distance
        const double a = -0.75;
        d = std::fabs(d);
        if (d <= 1) return (a + 2) * d * d * d - (a + 3) * d * d + 1;
        if (d < 2) return a * d * d * d - 5 * a * d * d + 8 * a * d - 4 * a;
        return 0.0;
      };
      const double ry = sy * (oy + 0.5) - 0.5, rx = sx * (ox + 0.5) - 0.5;
      const int64_t y0 = int64_t(std::floor(ry)), x0 = int64_t(std::floor(rx));
      double s = 0;
      for (int64_t yy = y0 - 1; yy <= y0 + 2; ++yy)
        for (int64_t xx = x0 - 1; xx <= x0 + 2; ++xx) s += kernel(ry - yy) * kernel(rx - xx) * at(yy, xx);
      return s;
    }
    case ResampleMode::Area: {
      const int64_t y0 = oy * H / Ho, y1 = ((oy + 1) * H + Ho - 1) / Ho;
      const int64_t x0 = ox * W / Wo, x1 = ((ox + 1) * W + Wo - 1) / Wo;
      double s = 0;
      for (int64_t y = y0; y < y1; ++y)
        for (int64_t x = x0; x < x1; ++x) s += at(y, x);
      return s / double((y1 - y0) * (x1 - x0));
    }
  }
  return 0;
}
}  // namespace

TEST_F(CpuBackendTest, Resample) {
  const int64_t N = 2, C = 3, H = 6, W = 5;
  Tensor x = randn({N, C, H, W}, 29);
  for (ResampleMode mode : {ResampleMode::Nearest, ResampleMode::Bilinear, ResampleMode::Bicubic, ResampleMode::Area})
    for (auto [Ho, Wo] : std::vector<std::pair<int64_t, int64_t>>{{6, 5}, {12, 10}, {13, 7}, {4, 3}, {1, 1}, {2, 11}}) {
      std::vector<double> ref;
      for (int64_t p = 0; p < N * C; ++p)
        for (int64_t oy = 0; oy < Ho; ++oy)
          for (int64_t ox = 0; ox < Wo; ++ox)
            ref.push_back(ref_resample_at(x.data_as<float>() + p * H * W, H, W, Ho, Wo, mode, oy, ox));
      Tensor y = poisoned({N, C, Ho, Wo});
      be->resample(x, mode, y);
      EXPECT_CLOSE(y, ref) << "mode " << static_cast<int>(mode) << " to " << Ho << "x" << Wo;
    }
}

TEST_F(CpuBackendTest, SingleThreadMatchesPool) {
  auto single = make_cpu_backend(1);
  Tensor x = randn({2, 4, 9, 7}, 30), w = randn({4, 4, 3, 3}, 31);
  Tensor a = poisoned({2, 4, 9, 7}), b = poisoned({2, 4, 9, 7});
  be->conv2d(x, w, nullptr, 1, 1, a);
  single->conv2d(x, w, nullptr, 1, 1, b);
  EXPECT_EQ(a.to_floats(), b.to_floats());
  Tensor ga = poisoned(x.shape()), gb = poisoned(x.shape());
  be->group_norm(x, 2, nullptr, nullptr, 1e-6f, ga);
  single->group_norm(x, 2, nullptr, nullptr, 1e-6f, gb);
  EXPECT_EQ(ga.to_floats(), gb.to_floats());
}

// y += gate * (x @ w^T + bias): bit for bit the composition it stands for (linear into scratch, then gated_residual
// or add), and close to a double-precision reference.
TEST_F(CpuBackendTest, LinearResidual) {
  struct Case {
    int64_t B, N, K, Nout;
    bool bias, gate;
  };
  for (const Case& c : {Case{2, 5, 64, 48, true, true}, Case{2, 5, 64, 48, false, true},
                        Case{3, 1, 33, 17, true, false}, Case{1, 7, 16, 130, false, false}}) {
    const Shape shape{c.B, c.N, c.Nout};
    const Tensor x = randn({c.B, c.N, c.K}, 60), w = randn({c.Nout, c.K}, 61, 0.3f), b = randn({c.Nout}, 62);
    const Tensor gate = randn({c.B, c.Nout}, 63, 0.5f, 0.2f), y0 = randn(shape, 64);
    const Tensor* bias = c.bias ? &b : nullptr;
    const Tensor* g = c.gate ? &gate : nullptr;
    const std::string what = shape_string(shape) + (c.bias ? " bias" : "") + (c.gate ? " gate" : "");

    Tensor want = y0.clone(), product = poisoned(shape);
    be->linear(x, w, bias, Activation::None, product);
    if (g) be->gated_residual(want, gate, product);
    else be->add(want, product, want);
    Tensor got = y0.clone(), scratch = poisoned(shape);
    be->linear_residual(x, w, bias, g, got, scratch);
    EXPECT_EQ(got.to_floats(), want.to_floats()) << what;

    std::vector<double> ref = ref_linear(x, w, bias, Activation::None);
    const float* py = y0.data_as<float>();
    for (size_t i = 0; i < ref.size(); ++i) {
      const int64_t batch = static_cast<int64_t>(i) / (c.N * c.Nout), col = static_cast<int64_t>(i) % c.Nout;
      const double gi = g ? gate.data_as<float>()[batch * c.Nout + col] : 1.0;
      ref[i] = py[i] + gi * ref[i];
    }
    EXPECT_CLOSE(got, ref) << what;
  }
}

// Bad shapes and aliasing are refused before anything is written (y and scratch stay NaN), naming the argument.
TEST_F(CpuBackendTest, LinearResidualRejectsBadShapesBeforeWriting) {
  struct Bad {
    Shape x, w, bias, gate, y, scratch;
    const char* says;
  };
  const Shape X{2, 3, 8}, W{5, 8}, Bias{5}, G{2, 5}, Y{2, 3, 5};
  for (const Bad& c : {Bad{X, W, Bias, {3, 5}, Y, Y, "gate has shape [3,5], expected [2,5]"},
                       Bad{X, W, Bias, {2, 4}, Y, Y, "gate has shape [2,4], expected [2,5]"},
                       Bad{X, W, {4}, G, Y, Y, "bias has shape [4], expected [5]"},
                       Bad{X, W, Bias, G, {2, 3, 4}, Y, "y has shape [2,3,4], expected [2,3,5]"},
                       Bad{X, W, Bias, G, {2, 4, 5}, Y, "y has shape [2,4,5], expected [2,3,5]"},
                       Bad{X, W, Bias, G, Y, {6, 5}, "scratch has shape [6,5], expected [2,3,5]"},
                       Bad{X, {5, 7}, Bias, G, Y, Y, "w [5,7] must be [Nout, K] with K = x's last dim 8"},
                       Bad{{6, 8}, W, Bias, G, Y, Y, "x must be [B, N, K], got [6,8]"}}) {
    const Tensor x = randn(c.x, 70), w = randn(c.w, 71), b = randn(c.bias, 72), gate = randn(c.gate, 73);
    Tensor y = poisoned(c.y), scratch = poisoned(c.scratch);
    try {
      be->linear_residual(x, w, &b, &gate, y, scratch);
      ADD_FAILURE() << c.says << ": not rejected";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
    }
    for (const Tensor* t : {&y, &scratch})
      for (float v : t->to_floats()) ASSERT_TRUE(std::isnan(v)) << c.says << ": written before validation";
  }
  // scratch must not be y (the product would overwrite the residual it is added to), nor overlap an input.
  const Tensor w = randn(W, 75);
  Tensor y = poisoned(Y), flat = randn({48 + 30}, 76);
  const Tensor x = flat.slice0(0, 48).view(X);
  Tensor scratch_over_x = flat.slice0(40, 70).view(Y);
  EXPECT_THROW(be->linear_residual(x, w, nullptr, nullptr, y, y), Error);
  EXPECT_THROW(be->linear_residual(x, w, nullptr, nullptr, y, scratch_over_x), Error);
  for (float v : y.to_floats()) ASSERT_TRUE(std::isnan(v)) << "written before validation";
  EXPECT_EQ(flat.slice0(48, 78).to_floats(), randn({48 + 30}, 76).slice0(48, 78).to_floats());
}

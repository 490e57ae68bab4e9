// The CPU backend's channels-last image ops (conv2d_nhwc, group_norm_nhwc, upsample_nearest_nhwc) against the NCHW
// ops through permute, and Backend's permute defaults (what a backend without native NHWC code runs) against both.
// CPU only, so CI without a GPU checks the reference that test_backend_ops holds the CUDA kernels to.
#include "test_cpu_util.h"

using namespace sparvar;
using namespace sparvar::test;

namespace {

// [N, H, W, C] <-> [N, C, H, W] on the backend.
Tensor to_nchw(Backend& be, const Tensor& nhwc) {
  Tensor t = poisoned({nhwc.dim(0), nhwc.dim(3), nhwc.dim(1), nhwc.dim(2)});
  be.permute(nhwc, {0, 3, 1, 2}, t);
  return t;
}
Tensor to_nhwc(Backend& be, const Tensor& nchw) {
  Tensor t = poisoned({nchw.dim(0), nchw.dim(2), nchw.dim(3), nchw.dim(1)});
  be.permute(nchw, {0, 2, 3, 1}, t);
  return t;
}

}  // namespace

TEST_F(CpuBackendTest, Conv2dNhwcMatchesNchw) {
  struct Case {
    Shape x;  // NHWC
    int64_t cout, k;
    int stride, pad;
    bool bias, residual;
  };
  for (const Case& c : {Case{{1, 9, 8, 3}, 5, 3, 1, 1, true, false}, Case{{2, 7, 6, 14}, 16, 3, 1, 1, true, true},
                         Case{{1, 6, 5, 32}, 8, 1, 1, 0, false, true}, Case{{2, 10, 7, 4}, 6, 3, 2, 1, false, false},
                         Case{{1, 5, 5, 64}, 3, 3, 1, 1, true, false}, Case{{1, 8, 6, 8}, 4, 4, 2, 0, true, true}}) {
    const int64_t N = c.x[0], H = c.x[1], W = c.x[2], Cin = c.x[3];
    const int64_t Ho = (H + 2 * c.pad - c.k) / c.stride + 1, Wo = (W + 2 * c.pad - c.k) / c.stride + 1;
    Tensor x = randn(c.x, 40), w_nchw = randn({c.cout, Cin, c.k, c.k}, 41, 0.3f), b = randn({c.cout}, 42);
    Tensor residual = randn({N, Ho, Wo, c.cout}, 43);
    const Tensor* bias = c.bias ? &b : nullptr;
    const Tensor* res = c.residual ? &residual : nullptr;
    // Reference: conv2d in NCHW, back to NHWC, plus the residual.
    Tensor y_nchw = poisoned({N, c.cout, Ho, Wo});
    be->conv2d(to_nchw(*be, x), w_nchw, bias, c.stride, c.pad, y_nchw);
    std::vector<double> ref = as_doubles(to_nhwc(*be, y_nchw));
    if (res) {
      const float* pr = residual.data_as<float>();
      for (size_t i = 0; i < ref.size(); ++i) ref[i] += pr[i];
    }
    Tensor w = poisoned({c.cout, c.k, c.k, Cin});
    be->permute(w_nchw, {0, 2, 3, 1}, w);
    Tensor y = poisoned({N, Ho, Wo, c.cout});
    be->conv2d_nhwc(x, w, bias, res, c.stride, c.pad, y);
    EXPECT_CLOSE(y, ref) << shape_string(c.x) << " k" << c.k << " s" << c.stride;
    Tensor y_default = poisoned({N, Ho, Wo, c.cout});
    be->Backend::conv2d_nhwc(x, w, bias, res, c.stride, c.pad, y_default);
    EXPECT_CLOSE(y_default, ref) << "permute default " << shape_string(c.x);
  }
}

TEST_F(CpuBackendTest, GroupNormNhwcMatchesNchw) {
  struct Case {
    Shape x;  // NHWC
    int groups;
    bool affine;
    Activation act;
    float shift;  // the inputs' mean
  };
  for (const Case& c : {Case{{2, 5, 3, 12}, 3, true, Activation::Silu, 0.0f},
                         Case{{1, 4, 4, 64}, 32, true, Activation::None, 0.0f},
                         Case{{1, 6, 5, 48}, 24, true, Activation::Silu, 0.0f},
                         Case{{2, 3, 3, 72}, 24, false, Activation::None, 0.0f},
                         Case{{1, 7, 5, 14}, 7, true, Activation::GeluTanh, 0.0f},
                         Case{{1, 8, 8, 32}, 32, true, Activation::Silu, 100.0f}}) {
    const int64_t C = c.x[3];
    Tensor x = randn(c.x, 44, 1.5f, c.shift), w = randn({C}, 45), b = randn({C}, 46);
    const Tensor* pw = c.affine ? &w : nullptr;
    const Tensor* pb = c.affine ? &b : nullptr;
    Tensor t = to_nchw(*be, x);
    be->group_norm(t, c.groups, pw, pb, 1e-6f, t);
    be->activation(t, c.act, t);
    const std::vector<double> ref = as_doubles(to_nhwc(*be, t));
    Tensor y = poisoned(c.x);
    be->group_norm_nhwc(x, c.groups, pw, pb, 1e-6f, c.act, y);
    EXPECT_CLOSE(y, ref) << shape_string(c.x) << " groups " << c.groups;
    Tensor y_default = poisoned(c.x);
    be->Backend::group_norm_nhwc(x, c.groups, pw, pb, 1e-6f, c.act, y_default);
    EXPECT_CLOSE(y_default, ref) << "permute default " << shape_string(c.x);
    be->group_norm_nhwc(x, c.groups, pw, pb, 1e-6f, c.act, x);  // in place
    EXPECT_CLOSE(x, ref) << "in place " << shape_string(c.x);
  }
}

TEST_F(CpuBackendTest, UpsampleNearestNhwc) {
  Tensor x = randn({2, 3, 4, 5}, 47);
  for (auto [fy, fx] : std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {1, 3}, {3, 1}, {1, 1}, {4, 2}}) {
    const Shape out{2, 3 * fy, 4 * fx, 5};
    std::vector<double> ref;
    const float* px = x.data_as<float>();
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t i = 0; i < out[1]; ++i)
        for (int64_t j = 0; j < out[2]; ++j)
          for (int64_t c = 0; c < 5; ++c) ref.push_back(px[((n * 3 + i / fy) * 4 + j / fx) * 5 + c]);
    Tensor y = poisoned(out);
    be->upsample_nearest_nhwc(x, y);
    EXPECT_CLOSE(y, ref) << fy << "x" << fx;
    if (fy == fx) {  // the NCHW resample (torch's nearest) through permute, the default
      Tensor big = poisoned({2, 5, out[1], out[2]});
      be->resample(to_nchw(*be, x), ResampleMode::Nearest, big);
      EXPECT_CLOSE(to_nhwc(*be, big), ref) << "resample " << fy;
      Tensor y_default = poisoned(out);
      be->Backend::upsample_nearest_nhwc(x, y_default);
      EXPECT_CLOSE(y_default, ref) << "permute default " << fy;
    }
  }
}

// Backend::gated_residual_norm on the CPU backend (the default body): bit for bit the composition it stands for
// (gated_residual, then layer_norm or layer_norm_modulate), and its bad inputs refused before anything is written.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "test_cpu_util.h"

using namespace sparvar;
using namespace sparvar::test;

namespace {

enum class Norm { Affine, NoAffine, Modulated };

}  // namespace

TEST_F(CpuBackendTest, GatedResidualNormEqualsResidualThenNorm) {
  for (const Shape& s : {Shape{2, 37, 64}, Shape{1, 5, 2048}, Shape{2, 3, 203}}) {
    const int64_t B = s[0], C = s[2];
    const Tensor x0 = randn(s, 80, 2.0f, 0.5f), gate = randn({B, C}, 81, 0.5f), y = randn(s, 82);
    const Tensor w = randn({C}, 83, 0.3f, 1.0f), b = randn({C}, 84), scale = randn({B, C}, 85, 0.3f);
    const Tensor shift = randn({B, C}, 86);
    for (Norm kind : {Norm::Affine, Norm::NoAffine, Norm::Modulated}) {
      for (bool y_is_x : {false, true}) {
        const char* kind_name = kind == Norm::Modulated ? " modulated" : kind == Norm::Affine ? " affine" : "";
        const std::string what = shape_string(s) + kind_name + (y_is_x ? " y=x" : "");
        Tensor want_x = x0.clone(), want_h = poisoned(s);
        be->gated_residual(want_x, gate, y_is_x ? want_x : y);
        if (kind == Norm::Modulated) be->layer_norm_modulate(want_x, scale, shift, 1e-6f, want_h);
        else if (kind == Norm::Affine) be->layer_norm(want_x, &w, &b, 1e-6f, want_h);
        else be->layer_norm(want_x, nullptr, nullptr, 1e-6f, want_h);

        const LayerNormSpec norm = kind == Norm::Modulated ? LayerNormSpec::modulate(scale, shift)
                                   : kind == Norm::Affine  ? LayerNormSpec::affine(&w, &b)
                                                           : LayerNormSpec{};
        Tensor x = x0.clone(), h = poisoned(s);
        be->gated_residual_norm(x, gate, y_is_x ? x : y, norm, 1e-6f, h);
        expect_identical(x, want_x, what + " x");
        expect_identical(h, want_h, what + " h");
      }
    }
  }
}

// Against plain formulas: x moved by gate * y, and h is the standardised new x (not the old one).
TEST_F(CpuBackendTest, GatedResidualNormNormalisesTheSum) {
  const int64_t B = 2, N = 4, C = 96;
  const Tensor x0 = randn({B, N, C}, 90), gate = randn({B, C}, 91, 0.5f, 1.0f), y = randn({B, N, C}, 92, 1.0f, 3.0f);
  Tensor x = x0.clone(), h = poisoned({B, N, C});
  be->gated_residual_norm(x, gate, y, LayerNormSpec{}, 1e-6f, h);
  const float *px = x.data_as<float>(), *p0 = x0.data_as<float>(), *pg = gate.data_as<float>();
  const float *py = y.data_as<float>(), *ph = h.data_as<float>();
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_NEAR(px[i], p0[i] + pg[(i / (N * C)) * C + i % C] * py[i], 1e-5) << i;
  for (int64_t r = 0; r < B * N; ++r) {
    const float* row = px + r * C;
    double mean = 0.0, var = 0.0;
    for (int64_t c = 0; c < C; ++c) mean += row[c];
    mean /= C;
    for (int64_t c = 0; c < C; ++c) var += (row[c] - mean) * (row[c] - mean);
    const double inv = 1.0 / std::sqrt(var / C + 1e-6);
    for (int64_t c = 0; c < C; ++c) ASSERT_NEAR(ph[r * C + c], (row[c] - mean) * inv, 1e-5) << r << ", " << c;
  }
}

// Bad shapes, dtypes and aliasing are refused before anything is written: x keeps its values, h stays NaN, and the
// message names the argument and the shapes.
TEST_F(CpuBackendTest, GatedResidualNormRejectsBadInputsBeforeWriting) {
  const Shape X{2, 3, 8};
  const Tensor x0 = randn(X, 93), gate = randn({2, 8}, 94), y = randn(X, 95), w = randn({8}, 96);
  const Tensor mod = randn({2, 8}, 97), bf16_gate = Tensor::zeros({2, 8}, DType::BF16);
  const LayerNormSpec affine = LayerNormSpec::affine(&w, &w), modulated = LayerNormSpec::modulate(mod, mod);
  LayerNormSpec no_shift = modulated;
  no_shift.shift = Tensor();
  const float eps = 1e-6f;
  auto rows_of = [](const Tensor& t) { return t.view({-1, 8}).slice0(0, 2); };  // a [2, 8] view into t
  struct Bad {
    std::function<void(Tensor& x, Tensor& h)> call;
    const char* says;
  };
  const std::vector<Bad> bads = {
      {[&](Tensor& x, Tensor& h) { be->gated_residual_norm(x, randn({3, 8}, 98), y, affine, eps, h); },
       "gated_residual_norm: gate has shape [3,8], expected [2,8] (x [2,3,8])"},
      {[&](Tensor& x, Tensor& h) { be->gated_residual_norm(x, gate, randn({2, 4, 8}, 98), affine, eps, h); },
       "y has shape [2,4,8], expected [2,3,8]"},
      {[&](Tensor& x, Tensor&) {
         Tensor h7 = poisoned({2, 3, 7});
         be->gated_residual_norm(x, gate, y, affine, eps, h7);
       },
       "h has shape [2,3,7], expected [2,3,8]"},
      {[&](Tensor& x, Tensor& h) { be->gated_residual_norm(x, gate, y, LayerNormSpec::affine(&w, &mod), eps, h); },
       "bias has shape [2,8], expected [8]"},
      {[&](Tensor& x, Tensor& h) {
         be->gated_residual_norm(x, gate, y, LayerNormSpec::affine(&mod, nullptr), eps, h);
       },
       "weight has shape [2,8], expected [8]"},
      {[&](Tensor& x, Tensor& h) { be->gated_residual_norm(x, gate, y, LayerNormSpec::modulate(w, mod), eps, h); },
       "scale has shape [8], expected [2,8]"},
      {[&](Tensor& x, Tensor& h) { be->gated_residual_norm(x, gate, y, no_shift, eps, h); }, "shift is missing"},
      {[&](Tensor& x, Tensor& h) {
         Tensor flat = x.view({6, 8});
         be->gated_residual_norm(flat, gate, y, affine, eps, h);
       },
       "x must be [B, N, C], got [6,8]"},
      {[&](Tensor& x, Tensor& h) { be->gated_residual_norm(x, bf16_gate, y, modulated, eps, h); },
       "gate bf16[2,8] on cpu must have the dtype and device of x"},
      {[&](Tensor& x, Tensor&) { be->gated_residual_norm(x, gate, y, modulated, eps, x); }, "overlaps x"},
      {[&](Tensor& x, Tensor& h) { be->gated_residual_norm(x, gate, h, modulated, eps, h); }, "overlaps y"},
      {[&](Tensor& x, Tensor& h) { be->gated_residual_norm(x, rows_of(h), y, modulated, eps, h); }, "overlaps gate"},
      {[&](Tensor& x, Tensor& h) { be->gated_residual_norm(x, rows_of(x), y, modulated, eps, h); }, "overlaps gate"},
      {[&](Tensor& x, Tensor& h) {
         be->gated_residual_norm(x, gate, y, LayerNormSpec::modulate(rows_of(x), mod), eps, h);
       },
       "overlaps scale"},
      {[&](Tensor& x, Tensor& h) {
         const Tensor bias_in_h = h.view({-1}).slice0(0, 8);
         be->gated_residual_norm(x, gate, y, LayerNormSpec::affine(&w, &bias_in_h), eps, h);
       },
       "overlaps bias"},
  };
  for (const Bad& bad : bads) {
    Tensor x = x0.clone(), h = poisoned(X);
    try {
      bad.call(x, h);
      ADD_FAILURE() << bad.says << ": not rejected";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad.says), std::string::npos) << e.what();
    }
    EXPECT_EQ(x.to_floats(), x0.to_floats()) << bad.says << ": x updated before validation";
    for (float v : h.to_floats()) ASSERT_TRUE(std::isnan(v)) << bad.says << ": h written before validation";
  }
}

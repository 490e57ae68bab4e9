// conv2d (NCHW, zero padding): im2col over bands of output rows, each band one cblas_sgemm
// y[n][:, band] = W[Cout, Cin*kh*kw] @ cols[Cin*kh*kw, band]. Bands keep the column buffer bounded
// (a 3x3 conv at 1024x1024 with 128 channels would otherwise need a 4.5 GB buffer).
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"

namespace sparvar::cpu {

namespace {
constexpr int64_t kColumnBufferFloats = int64_t{8} << 20;  // 32 MB
}

void CpuBackend::conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, int stride, int pad, Tensor& y) {
  constexpr std::string_view op = "conv2d";
  check_f32(x, op, "input");
  check_f32(w, op, "weight");
  SPARVAR_CHECK(x.ndim() == 4, "conv2d: input must be [N, Cin, H, W], got {}", shape_string(x.shape()));
  SPARVAR_CHECK(w.ndim() == 4, "conv2d: weight must be [Cout, Cin, kh, kw], got {}", shape_string(w.shape()));
  const int64_t N = x.dim(0), Cin = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t Cout = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  SPARVAR_CHECK(w.dim(1) == Cin, "conv2d: weight {} does not match input {} ({} input channels)",
                shape_string(w.shape()), shape_string(x.shape()), Cin);
  SPARVAR_CHECK(stride >= 1 && pad >= 0, "conv2d: stride {} must be >= 1 and pad {} >= 0", stride, pad);
  SPARVAR_CHECK(kh >= 1 && kw >= 1 && H + 2 * pad >= kh && W + 2 * pad >= kw,
                "conv2d: kernel {}x{} of weight {} does not fit input {} padded by {}", kh, kw,
                shape_string(w.shape()), shape_string(x.shape()), pad);
  if (bias) check_f32_shape(*bias, {Cout}, op, "bias");
  const int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
  check_output(y, {N, Cout, Ho, Wo}, op);
  check_disjoint(x, y, op, "input");
  check_disjoint(w, y, op, "weight");
  if (bias) check_disjoint(*bias, y, op, "bias");
  if (y.numel() == 0) return;

  const int64_t K = Cin * kh * kw;
  const float* px = x.data_as<float>();
  const float* pw = w.data_as<float>();
  float* py = y.data_as<float>();
  const bool pointwise = kh == 1 && kw == 1 && stride == 1 && pad == 0;  // the input already is the column matrix
  const int64_t band_rows = pointwise ? Ho : std::clamp<int64_t>(kColumnBufferFloats / std::max<int64_t>(K * Wo, 1), 1, Ho);
  std::vector<float> cols(pointwise || K == 0 ? 0 : static_cast<size_t>(K * band_rows * Wo));

  for (int64_t n = 0; n < N; ++n) {
    const float* xn = px + n * Cin * H * W;
    float* yn = py + n * Cout * Ho * Wo;
    for (int64_t oy0 = 0; oy0 < Ho; oy0 += band_rows) {
      const int64_t rows = std::min(band_rows, Ho - oy0);
      const int64_t band = rows * Wo;
      const float* b_matrix = xn;
      if (K == 0) {
        for (int64_t co = 0; co < Cout; ++co) std::fill(yn + co * Ho * Wo + oy0 * Wo, yn + co * Ho * Wo + oy0 * Wo + band, 0.0f);
        continue;
      }
      if (!pointwise) {
        // Row (ci, ky, kx) of cols holds input pixel (oy*s - p + ky, ox*s - p + kx) of channel ci, 0 outside.
        pool_.parallel_for(0, K, std::max<int64_t>(1, 16384 / band), [&](int64_t lo, int64_t hi) {
          for (int64_t kr = lo; kr < hi; ++kr) {
            const int64_t ci = kr / (kh * kw), ky = (kr / kw) % kh, kx = kr % kw;
            float* dst = cols.data() + kr * band;
            for (int64_t r = 0; r < rows; ++r) {
              const int64_t iy = (oy0 + r) * stride - pad + ky;
              float* d = dst + r * Wo;
              if (iy < 0 || iy >= H) {
                std::fill(d, d + Wo, 0.0f);
                continue;
              }
              const float* src = xn + (ci * H + iy) * W;
              for (int64_t ox = 0; ox < Wo; ++ox) {
                const int64_t ix = ox * stride - pad + kx;
                d[ox] = (ix >= 0 && ix < W) ? src[ix] : 0.0f;
              }
            }
          }
        });
        b_matrix = cols.data();
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(Cout), static_cast<int>(band),
                  static_cast<int>(K), 1.0f, pw, static_cast<int>(K), b_matrix, static_cast<int>(band), 0.0f,
                  yn + oy0 * Wo, static_cast<int>(Ho * Wo));
    }
  }
  if (!bias) return;
  const float* pb = bias->data_as<float>();
  pool_.parallel_for(0, N * Cout, std::max<int64_t>(1, 16384 / (Ho * Wo)), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      float* plane = py + nc * Ho * Wo;
      const float b = pb[nc % Cout];
      for (int64_t i = 0; i < Ho * Wo; ++i) plane[i] += b;
    }
  });
}

}  // namespace sparvar::cpu

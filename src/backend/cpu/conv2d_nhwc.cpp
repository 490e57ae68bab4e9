// conv2d_nhwc: im2col over bands of output pixels, each band one cblas_sgemm. In NHWC the column matrix of a band
// is [pixels, K] with K = (ky, kx, ci), which is the layout of w [Cout, kh, kw, Cin] seen as [Cout, K], so
// y[band, Cout] = cols[band, K] @ w[Cout, K]^T, written straight into y. Bias, then residual, are added after
// (the order of the NCHW decoder: conv2d's bias, then add).
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/nhwc_checks.h"

namespace sparvar::cpu {

namespace {
constexpr int64_t kColumnBufferFloats = int64_t{8} << 20;  // 32 MB
constexpr int64_t kMaxBandPixels = int64_t{1} << 24;        // keeps every BLAS dimension an int
}  // namespace

void CpuBackend::conv2d_nhwc(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual, int stride,
                             int pad, Tensor& y) {
  constexpr std::string_view op = "conv2d_nhwc";
  check_f32(x, op, "x");
  check_f32(w, op, "w");
  if (bias) check_f32(*bias, op, "bias");
  if (residual) check_f32(*residual, op, "residual");
  check_f32(y, op, "output");
  const ConvNhwcDims d = check_conv2d_nhwc(x, w, bias, residual, stride, pad, y, op);
  if (y.numel() == 0) return;

  const int64_t K = d.kh * d.kw * d.cin, P = d.n * d.ho * d.wo, plane = d.ho * d.wo;
  const float* px = x.data_as<float>();
  const float* pw = w.data_as<float>();
  float* py = y.data_as<float>();
  const bool pointwise = d.kh == 1 && d.kw == 1 && stride == 1 && pad == 0;  // x already is the column matrix
  const int64_t band = std::min(pointwise ? P : std::max<int64_t>(1, kColumnBufferFloats / std::max<int64_t>(K, 1)),
                                kMaxBandPixels);
  std::vector<float> cols(pointwise || K == 0 ? 0 : static_cast<size_t>(std::min(band, P) * K));

  for (int64_t p0 = 0; p0 < P; p0 += band) {
    const int64_t rows = std::min(band, P - p0);
    if (K == 0) {
      std::fill(py + p0 * d.cout, py + (p0 + rows) * d.cout, 0.0f);
      continue;
    }
    const float* a = px + p0 * d.cin;
    if (!pointwise) {
      // Row r of cols: the kh x kw taps of output pixel p0 + r, each Cin contiguous values (0 in the padding).
      pool_.parallel_for(0, rows, std::max<int64_t>(1, 4096 / K), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const int64_t p = p0 + r, n = p / plane, oy = (p % plane) / d.wo, ox = p % d.wo;
          float* dst = cols.data() + r * K;
          for (int64_t ky = 0; ky < d.kh; ++ky) {
            for (int64_t kx = 0; kx < d.kw; ++kx, dst += d.cin) {
              const int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
              if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) {
                std::fill(dst, dst + d.cin, 0.0f);
              } else {
                std::memcpy(dst, px + ((n * d.h + iy) * d.w + ix) * d.cin, static_cast<size_t>(d.cin) * sizeof(float));
              }
            }
          }
        }
      });
      a = cols.data();
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(d.cout),
                static_cast<int>(K), 1.0f, a, static_cast<int>(K), pw, static_cast<int>(K), 0.0f, py + p0 * d.cout,
                static_cast<int>(d.cout));
  }
  if (!bias && !residual) return;
  const float* pb = bias ? bias->data_as<float>() : nullptr;
  const float* pr = residual ? residual->data_as<float>() : nullptr;
  pool_.parallel_for(0, P, std::max<int64_t>(1, 16384 / d.cout), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      float* row = py + p * d.cout;
      for (int64_t c = 0; c < d.cout; ++c) {
        if (pb) row[c] += pb[c];
        if (pr) row[c] += pr[p * d.cout + c];
      }
    }
  });
}

}  // namespace sparvar::cpu

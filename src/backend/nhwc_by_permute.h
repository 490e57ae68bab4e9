// The default channels-last ops of Backend (backend.h): each one permutes to NCHW, runs the NCHW op, permutes back.
// Correct on any backend (a test double that forwards only the NCHW ops included) but they move every tensor two
// more times; the CPU and CUDA backends override them with native code. Shapes are checked first, with the
// messages of the native ops (nhwc_checks.h); dtype and device errors come from the first op called.
#pragma once

#include "backend/backend.h"
#include "backend/nhwc_checks.h"

namespace sparvar {

inline void Backend::conv2d_nhwc(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual,
                                 int stride, int pad, Tensor& y) {
  const ConvNhwcDims d = check_conv2d_nhwc(x, w, bias, residual, stride, pad, y, "conv2d_nhwc");
  Tensor x_nchw = empty({d.n, d.cin, d.h, d.w}, x.dtype());
  permute(x, {0, 3, 1, 2}, x_nchw);
  Tensor w_nchw = empty({d.cout, d.cin, d.kh, d.kw}, w.dtype());
  permute(w, {0, 3, 1, 2}, w_nchw);
  Tensor y_nchw = empty({d.n, d.cout, d.ho, d.wo}, x.dtype());
  conv2d(x_nchw, w_nchw, bias, stride, pad, y_nchw);
  permute(y_nchw, {0, 2, 3, 1}, y);
  if (residual) add(y, *residual, y);
}

inline void Backend::group_norm_nhwc(const Tensor& x, int groups, const Tensor* w, const Tensor* b, float eps,
                                     Activation act, Tensor& y) {
  check_group_norm_nhwc(x, groups, w, b, y, "group_norm_nhwc");
  // Normalised in a temporary, so y may be x.
  Tensor t = empty({x.dim(0), x.dim(3), x.dim(1), x.dim(2)}, x.dtype());
  permute(x, {0, 3, 1, 2}, t);
  group_norm(t, groups, w, b, eps, t);
  if (act != Activation::None) activation(t, act, t);
  permute(t, {0, 2, 3, 1}, y);
}

// resample's Nearest takes floor(dst * float(in) / out): the source row i / f for the factors of the decoder (powers
// of two, where in / out is exact in float).
inline void Backend::upsample_nearest_nhwc(const Tensor& x, Tensor& y) {
  const UpsampleFactors f = check_upsample_nearest_nhwc(x, y, "upsample_nearest_nhwc");
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Tensor small = empty({N, C, H, W}, x.dtype());
  permute(x, {0, 3, 1, 2}, small);
  Tensor big = empty({N, C, f.fy * H, f.fx * W}, x.dtype());
  resample(small, ResampleMode::Nearest, big);
  permute(big, {0, 2, 3, 1}, y);
}

}  // namespace sparvar

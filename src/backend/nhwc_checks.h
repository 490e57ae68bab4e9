// The checks of the channels-last ops (conv2d_nhwc, group_norm_nhwc, upsample_nearest_nhwc) that do not depend on
// the backend: shapes, parameters, aliasing. Shared by the CPU and CUDA entry points and the permute defaults, so
// all reject the same calls with the same messages. Each backend checks dtype and device itself, before these.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/tensor.h"

namespace sparvar {

struct ConvNhwcDims {
  int64_t n, h, w, cin, cout, kh, kw, ho, wo;
};

// x [N, H, W, Cin], w [Cout, kh, kw, Cin], bias [Cout], residual and y [N, Ho, Wo, Cout]; y shares no byte with an
// input.
inline ConvNhwcDims check_conv2d_nhwc(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual,
                                      int stride, int pad, const Tensor& y, std::string_view op) {
  SPARVAR_CHECK(x.ndim() == 4, "{}: x must be [N, H, W, Cin], got {}", op, shape_string(x.shape()));
  SPARVAR_CHECK(w.ndim() == 4 && w.dim(3) == x.dim(3),
                "{}: w {} must be [Cout, kh, kw, Cin] with Cin = {} (x {})", op, shape_string(w.shape()), x.dim(3),
                shape_string(x.shape()));
  SPARVAR_CHECK(stride >= 1 && pad >= 0, "{}: stride {} must be >= 1 and pad {} >= 0", op, stride, pad);
  ConvNhwcDims d{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(1), w.dim(2), 0, 0};
  SPARVAR_CHECK(d.kh >= 1 && d.kw >= 1 && d.h + 2 * pad >= d.kh && d.w + 2 * pad >= d.kw,
                "{}: kernel {}x{} of w {} does not fit x {} padded by {}", op, d.kh, d.kw, shape_string(w.shape()),
                shape_string(x.shape()), pad);
  d.ho = (d.h + 2 * pad - d.kh) / stride + 1;
  d.wo = (d.w + 2 * pad - d.kw) / stride + 1;
  const Shape out{d.n, d.ho, d.wo, d.cout};
  if (bias) {
    SPARVAR_CHECK(bias->shape() == Shape{d.cout}, "{}: bias has shape {}, expected [{}] (w {})", op,
                  shape_string(bias->shape()), d.cout, shape_string(w.shape()));
  }
  if (residual) {
    SPARVAR_CHECK(residual->shape() == out, "{}: residual has shape {}, expected {} (x {}, w {})", op,
                  shape_string(residual->shape()), shape_string(out), shape_string(x.shape()),
                  shape_string(w.shape()));
  }
  SPARVAR_CHECK(y.shape() == out, "{}: output has shape {}, expected {} (x {}, w {}, stride {}, pad {})", op,
                shape_string(y.shape()), shape_string(out), shape_string(x.shape()), shape_string(w.shape()), stride,
                pad);
  check_disjoint(x, y, op, "x");
  check_disjoint(w, y, op, "w");
  if (bias) check_disjoint(*bias, y, op, "bias");
  if (residual) check_disjoint(*residual, y, op, "residual");
  return d;
}

// x [N, H, W, C] with C divisible by groups, w and b [C], y like x (x itself or disjoint from it).
inline void check_group_norm_nhwc(const Tensor& x, int groups, const Tensor* w, const Tensor* b, const Tensor& y,
                                  std::string_view op) {
  SPARVAR_CHECK(x.ndim() == 4, "{}: x must be [N, H, W, C], got {}", op, shape_string(x.shape()));
  const int64_t C = x.dim(3);
  SPARVAR_CHECK(groups >= 1 && C % groups == 0, "{}: C = {} of x {} is not divisible into {} groups", op, C,
                shape_string(x.shape()), groups);
  if (w) {
    SPARVAR_CHECK(w->shape() == Shape{C}, "{}: w has shape {}, expected [{}] (x {})", op, shape_string(w->shape()),
                  C, shape_string(x.shape()));
  }
  if (b) {
    SPARVAR_CHECK(b->shape() == Shape{C}, "{}: b has shape {}, expected [{}] (x {})", op, shape_string(b->shape()),
                  C, shape_string(x.shape()));
  }
  SPARVAR_CHECK(y.shape() == x.shape(), "{}: output has shape {}, expected {} (the shape of x)", op,
                shape_string(y.shape()), shape_string(x.shape()));
  check_same_or_disjoint(x, y, op, "x");
  if (w) check_disjoint(*w, y, op, "w");
  if (b) check_disjoint(*b, y, op, "b");
}

struct UpsampleFactors {
  int64_t fy, fx;
};

// x [N, H, W, C] with H, W > 0; y [N, fy * H, fx * W, C] for whole factors fy, fx >= 1; y disjoint from x.
inline UpsampleFactors check_upsample_nearest_nhwc(const Tensor& x, const Tensor& y, std::string_view op) {
  SPARVAR_CHECK(x.ndim() == 4, "{}: x must be [N, H, W, C], got {}", op, shape_string(x.shape()));
  SPARVAR_CHECK(x.dim(1) > 0 && x.dim(2) > 0, "{}: cannot upsample the empty image x {}", op,
                shape_string(x.shape()));
  SPARVAR_CHECK(y.ndim() == 4 && y.dim(0) == x.dim(0) && y.dim(3) == x.dim(3) && y.dim(1) >= x.dim(1) &&
                    y.dim(2) >= x.dim(2) && y.dim(1) % x.dim(1) == 0 && y.dim(2) % x.dim(2) == 0,
                "{}: output {} must be [{}, fy * {}, fx * {}, {}] for whole factors fy, fx >= 1 (x {})", op,
                shape_string(y.shape()), x.dim(0), x.dim(1), x.dim(2), x.dim(3), shape_string(x.shape()));
  check_disjoint(x, y, op, "x");
  return {y.dim(1) / x.dim(1), y.dim(2) / x.dim(2)};
}

}  // namespace sparvar

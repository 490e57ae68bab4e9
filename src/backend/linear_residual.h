// Backend::linear_residual (backend.h): its shape checks, shared with the CUDA override so both reject the same calls
// with the same messages, and the default body, the composition it replaces. Inline, so every Backend (a test double
// that forwards only the pure-virtual ops included) links without another library. Each backend checks dtype and
// device itself (the default: the first op it calls does).
#pragma once

#include <cstdint>
#include <string_view>

#include "backend/backend.h"

namespace sparvar {

struct LinearResidualDims {
  int64_t B, N, K, Nout;
};

// x [B, N, K], w [Nout, K], bias [Nout], gate [B, Nout], y and scratch [B, N, Nout]; y and scratch share no byte with
// an input or with each other (scratch is written while y is still to be read).
inline LinearResidualDims check_linear_residual(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* gate,
                                                const Tensor& y, const Tensor& scratch, std::string_view op) {
  SPARVAR_CHECK(x.ndim() == 3, "{}: x must be [B, N, K], got {}", op, shape_string(x.shape()));
  const int64_t B = x.dim(0), N = x.dim(1), K = x.dim(2);
  SPARVAR_CHECK(w.ndim() == 2 && w.dim(1) == K, "{}: w {} must be [Nout, K] with K = x's last dim {} (x {})", op,
                shape_string(w.shape()), K, shape_string(x.shape()));
  const int64_t Nout = w.dim(0);
  if (bias) {
    SPARVAR_CHECK(bias->shape() == Shape{Nout}, "{}: bias has shape {}, expected [{}] (w {})", op,
                  shape_string(bias->shape()), Nout, shape_string(w.shape()));
  }
  if (gate) {
    SPARVAR_CHECK(gate->shape() == (Shape{B, Nout}), "{}: gate has shape {}, expected {} (x {}, w {})", op,
                  shape_string(gate->shape()), shape_string({B, Nout}), shape_string(x.shape()),
                  shape_string(w.shape()));
  }
  const Shape out{B, N, Nout};
  SPARVAR_CHECK(y.shape() == out, "{}: y has shape {}, expected {} (x {}, w {})", op, shape_string(y.shape()),
                shape_string(out), shape_string(x.shape()), shape_string(w.shape()));
  SPARVAR_CHECK(scratch.shape() == out, "{}: scratch has shape {}, expected {} like y", op,
                shape_string(scratch.shape()), shape_string(out));
  for (const Tensor* out_arg : {&y, &scratch}) {
    check_disjoint(x, *out_arg, op, "x");
    check_disjoint(w, *out_arg, op, "w");
    if (bias) check_disjoint(*bias, *out_arg, op, "bias");
    if (gate) check_disjoint(*gate, *out_arg, op, "gate");
  }
  check_disjoint(y, scratch, op, "y");
  return {B, N, K, Nout};
}

// The composition: the product into scratch, then the (gated) residual add into y.
inline void Backend::linear_residual(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* gate,
                                     Tensor& y, Tensor& scratch) {
  check_linear_residual(x, w, bias, gate, y, scratch, "linear_residual");
  linear(x, w, bias, Activation::None, scratch);
  if (gate) gated_residual(y, *gate, scratch);
  else add(y, scratch, y);
}

}  // namespace sparvar

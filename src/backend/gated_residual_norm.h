// Backend::gated_residual_norm (backend.h): its checks, shared with the CUDA override so both reject the same calls
// with the same messages, and the default body, the composition it replaces. Inline, so every Backend (a test double
// that forwards only the pure-virtual ops included) links without another library.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "backend/backend.h"

namespace sparvar {

struct GatedResidualNormDims {
  int64_t B, N, C;
};

// x, y, h [B, N, C]; gate [B, C]; norm's weight, bias [C] (each optional) or scale, shift [B, C]; all of x's dtype
// and device, so the default cannot fail half-way (its first op rejects an x its backend does not take). Aliasing:
// y is x or disjoint from it; x (written first) overlaps no other input; h overlaps no argument.
inline GatedResidualNormDims check_gated_residual_norm(const Tensor& x, const Tensor& gate, const Tensor& y,
                                                       const LayerNormSpec& norm, const Tensor& h,
                                                       std::string_view op) {
  SPARVAR_CHECK(x.ndim() == 3, "{}: x must be [B, N, C], got {}", op, shape_string(x.shape()));
  const int64_t B = x.dim(0), N = x.dim(1), C = x.dim(2);
  auto check_arg = [&](const Tensor& t, const Shape& shape, std::string_view arg) {
    SPARVAR_CHECK(t.defined(), "{}: {} is missing (undefined tensor)", op, arg);
    SPARVAR_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {} (x {})", op, arg, shape_string(t.shape()),
                  shape_string(shape), shape_string(x.shape()));
    SPARVAR_CHECK(t.dtype() == x.dtype() && t.device() == x.device(),
                  "{}: {} {} must have the dtype and device of x {}", op, arg, t.describe(), x.describe());
  };
  check_arg(gate, {B, C}, "gate");
  check_arg(y, x.shape(), "y");
  check_arg(h, x.shape(), "h");
  struct Param {
    const Tensor* t;
    std::string_view name;
  };
  using Params = std::array<Param, 2>;
  const Params params = norm.modulated ? Params{{{&norm.scale, "scale"}, {&norm.shift, "shift"}}}
                                       : Params{{{&norm.weight, "weight"}, {&norm.bias, "bias"}}};
  for (const Param& p : params) {
    if (!norm.modulated && !p.t->defined()) continue;  // an affine without weight or bias
    check_arg(*p.t, norm.modulated ? Shape{B, C} : Shape{C}, p.name);
    check_disjoint(*p.t, x, op, p.name);
    check_disjoint(*p.t, h, op, p.name);
  }
  check_same_or_disjoint(y, x, op, "y");
  check_disjoint(gate, x, op, "gate");
  check_disjoint(x, h, op, "x");
  check_disjoint(y, h, op, "y");
  check_disjoint(gate, h, op, "gate");
  return {B, N, C};
}

// The composition: gated_residual, then layer_norm or layer_norm_modulate of the updated x.
inline void Backend::gated_residual_norm(Tensor& x, const Tensor& gate, const Tensor& y, const LayerNormSpec& norm,
                                         float eps, Tensor& h) {
  check_gated_residual_norm(x, gate, y, norm, h, "gated_residual_norm");
  gated_residual(x, gate, y);
  if (norm.modulated) {
    layer_norm_modulate(x, norm.scale, norm.shift, eps, h);
  } else {
    layer_norm(x, norm.weight.defined() ? &norm.weight : nullptr, norm.bias.defined() ? &norm.bias : nullptr, eps, h);
  }
}

}  // namespace sparvar

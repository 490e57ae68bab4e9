#include "models/bsq_vae/resblock.h"

namespace sparvar::bsq_vae {

namespace {
constexpr float kNormEps = 1e-6f;  // the official Normalize's GroupNorm eps
}

Tensor norm_silu(Backend& be, const Tensor& x, const NormWeights& n) {
  Tensor y = be.empty(x.shape(), x.dtype());
  be.group_norm(x, n.groups, &n.w, &n.b, kNormEps, y);
  be.activation(y, Activation::Silu, y);
  return y;
}

Tensor conv(Backend& be, const Tensor& x, const ConvWeights& c) {
  const int64_t k = c.w.dim(2);
  const Shape out{x.dim(0), c.w.dim(0), x.dim(2) + 2 * c.pad - k + 1, x.dim(3) + 2 * c.pad - k + 1};
  Tensor y = be.empty(out, x.dtype());
  be.conv2d(x, c.w, &c.b, /*stride=*/1, c.pad, y);
  return y;
}

Tensor resblock(Backend& be, const Tensor& x, const ResBlockWeights& w) {
  Tensor h = conv(be, norm_silu(be, x, w.norm1), w.conv1);
  h = conv(be, norm_silu(be, h, w.norm2), w.conv2);
  const Tensor skip = w.has_shortcut ? conv(be, x, w.shortcut) : x;
  be.add(h, skip, h);
  return h;
}

}  // namespace sparvar::bsq_vae

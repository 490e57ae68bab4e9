#include "models/bsq_vae/nhwc_blocks.h"

namespace sparvar::bsq_vae {

namespace {
constexpr float kNormEps = 1e-6f;  // the official Normalize's GroupNorm eps
}

Tensor norm_silu_nhwc(Backend& be, const Tensor& x, const NormWeights& n) {
  Tensor y = be.empty(x.shape(), x.dtype());
  be.group_norm_nhwc(x, n.groups, &n.w, &n.b, kNormEps, Activation::Silu, y);
  return y;
}

void norm_silu_nhwc_in_place(Backend& be, Tensor& x, const NormWeights& n) {
  be.group_norm_nhwc(x, n.groups, &n.w, &n.b, kNormEps, Activation::Silu, x);
}

Tensor conv_nhwc(Backend& be, const Tensor& x, const ConvWeights& c, const Tensor* residual) {
  const int64_t k = c.w.dim(1);
  const Shape out{x.dim(0), x.dim(1) + 2 * c.pad - k + 1, x.dim(2) + 2 * c.pad - k + 1, c.w.dim(0)};
  Tensor y = be.empty(out, x.dtype());
  be.conv2d_nhwc(x, c.w, &c.b, residual, /*stride=*/1, c.pad, y);
  return y;
}

Tensor resblock_nhwc(Backend& be, const Tensor& x, const ResBlockWeights& w) {
  Tensor h = conv_nhwc(be, norm_silu_nhwc(be, x, w.norm1), w.conv1);
  norm_silu_nhwc_in_place(be, h, w.norm2);  // conv1's output is needed only normalised
  const Tensor skip = w.has_shortcut ? conv_nhwc(be, x, w.shortcut) : x;
  return conv_nhwc(be, h, w.conv2, &skip);
}

Tensor upsample2x_nhwc(Backend& be, const Tensor& x, const ConvWeights& conv_after) {
  Tensor big = be.empty({x.dim(0), 2 * x.dim(1), 2 * x.dim(2), x.dim(3)}, x.dtype());
  be.upsample_nearest_nhwc(x, big);
  return conv_nhwc(be, big, conv_after);
}

}  // namespace sparvar::bsq_vae

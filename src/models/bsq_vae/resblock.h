// The decoder's residual block: x + conv2(silu(norm2(conv1(silu(norm1(x)))))), with a 1x1 conv on the
// skip path when the channel count changes.
#pragma once

#include "backend/backend.h"
#include "models/bsq_vae/weights.h"

namespace sparvar::bsq_vae {

// GroupNorm (eps 1e-6) then SiLU, in place on a fresh output.
Tensor norm_silu(Backend& be, const Tensor& x, const NormWeights& n);
Tensor conv(Backend& be, const Tensor& x, const ConvWeights& c);
// x [N, Cin, H, W] -> [N, Cout, H, W].
Tensor resblock(Backend& be, const Tensor& x, const ResBlockWeights& w);

}  // namespace sparvar::bsq_vae

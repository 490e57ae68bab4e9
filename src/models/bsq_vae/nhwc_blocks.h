// The decoder's blocks on channels-last activations [N, H, W, C] (weights from to_channels_last). Per resblock the
// full-tensor passes are: norm + SiLU, conv (+ bias), norm + SiLU (in place), conv (+ bias + skip, one epilogue).
#pragma once

#include "backend/backend.h"
#include "models/bsq_vae/weights.h"

namespace sparvar::bsq_vae {

// GroupNorm (eps 1e-6) then SiLU, one fused op: into a new tensor, or over x itself.
Tensor norm_silu_nhwc(Backend& be, const Tensor& x, const NormWeights& n);
void norm_silu_nhwc_in_place(Backend& be, Tensor& x, const NormWeights& n);
// conv(x) + bias (+ residual [N, H, W, Cout]).
Tensor conv_nhwc(Backend& be, const Tensor& x, const ConvWeights& c, const Tensor* residual = nullptr);
// x [N, H, W, Cin] -> [N, H, W, Cout].
Tensor resblock_nhwc(Backend& be, const Tensor& x, const ResBlockWeights& w);
// Nearest x2 then the 3x3 conv: [N, H, W, C] -> [N, 2H, 2W, C].
Tensor upsample2x_nhwc(Backend& be, const Tensor& x, const ConvWeights& conv_after);

}  // namespace sparvar::bsq_vae

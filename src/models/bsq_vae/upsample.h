// Decoder upsampling: nearest-neighbour x2 then a 3x3 conv (the official Upsample).
#pragma once

#include "backend/backend.h"
#include "models/bsq_vae/weights.h"

namespace sparvar::bsq_vae {

// x [N, C, H, W] -> [N, C, 2H, 2W].
Tensor upsample2x(Backend& be, const Tensor& x, const ConvWeights& conv_after);

}  // namespace sparvar::bsq_vae

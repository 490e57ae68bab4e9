// The decoder's weights for the channels-last (NHWC) path: every convolution weight permuted once, at load, from
// [Cout, Cin, k, k] to [Cout, k, k, Cin] (the KRSC layout of Backend::conv2d_nhwc), and conv_out's output channels
// zero-padded to a multiple of 8.
#pragma once

#include "backend/backend.h"
#include "models/bsq_vae/weights.h"

namespace sparvar::bsq_vae {

// conv_out's output channels are padded to a multiple of this: cuDNN's NHWC tensor-core kernels want 16-byte
// pixel rows (8 bf16), which 3 RGB channels are not (cuDNN would take a slow engine or refuse). The zero
// channels are dropped when the image goes back to NCHW.
constexpr int64_t kConvOutChannelMultiple = 8;

// New tensors on `backend`; `w` (NCHW weights, as loaded) is left as it is.
DecoderWeights to_channels_last(Backend& backend, const DecoderWeights& w);

}  // namespace sparvar::bsq_vae

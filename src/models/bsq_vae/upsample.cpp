#include "models/bsq_vae/upsample.h"

#include "models/bsq_vae/resblock.h"

namespace sparvar::bsq_vae {

Tensor upsample2x(Backend& be, const Tensor& x, const ConvWeights& conv_after) {
  Tensor big = be.empty({x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)}, x.dtype());
  be.resample(x, ResampleMode::Nearest, big);
  return conv(be, big, conv_after);
}

}  // namespace sparvar::bsq_vae

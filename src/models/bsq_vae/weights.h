// The decoder's weights on a backend, every tensor loaded by name with its expected shape.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/bsq_vae/config.h"

namespace sparvar::io {
class Checkpoint;
}

namespace sparvar::bsq_vae {

struct ConvWeights {
  Tensor w;  // [Cout, Cin, k, k]
  Tensor b;  // [Cout]
  int pad = 0;
};

struct NormWeights {
  Tensor w, b;  // [C]
  int groups = 32;
};

struct ResBlockWeights {
  NormWeights norm1;
  ConvWeights conv1;
  NormWeights norm2;
  ConvWeights conv2;
  bool has_shortcut = false;  // 1x1 conv when Cin != Cout
  ConvWeights shortcut;
};

struct UpLevelWeights {
  std::vector<ResBlockWeights> blocks;
  bool has_upsample = false;
  ConvWeights upsample;  // 3x3 conv after the nearest x2 resize
};

struct DecoderWeights {
  ConvWeights conv_in;
  ResBlockWeights mid1, mid2;
  std::vector<UpLevelWeights> up;  // indexed by level; run from the last to the first
  NormWeights norm_out;
  ConvWeights conv_out;
};

// Loads every decoder tensor of `cfg` (name and shape checked; the error names the key and both shapes) and
// rejects decoder keys the config does not use (a file with extra levels or attention blocks would otherwise
// decode silently wrong). Encoder and quantiser keys are ignored.
DecoderWeights load_decoder_weights(const io::Checkpoint& ckpt, const VaeConfig& cfg, Backend& backend,
                                    DType dtype);

}  // namespace sparvar::bsq_vae

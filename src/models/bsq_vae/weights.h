// The decoder's weights on a backend, every tensor loaded by name with its expected shape (or made up, for
// benchmarks and tests).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/bsq_vae/config.h"

namespace sparvar::io {
class Checkpoint;
}

namespace sparvar::bsq_vae {

struct ConvWeights {
  Tensor w;  // [Cout, Cin, k, k]; channels-last decoders: [Cout, k, k, Cin] (channels_last.h)
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

// A decoder of `cfg` with random weights on `backend` (a deterministic function of the seed): convolutions
// uniform in +-1/sqrt(fan_in) like torch's default initialisation, norm scales near 1 and shifts near 0 (random,
// so that the affine is exercised). For benchmarks and layout tests, which need no file.
DecoderWeights random_decoder_weights(const VaeConfig& cfg, Backend& backend, DType dtype, uint64_t seed);

// Where the tensors of each module come from; module is the official name, e.g. "decoder.up.3.block.0.conv1".
struct WeightSource {
  std::function<ConvWeights(const std::string& module, int cin, int cout, int k)> conv;
  std::function<NormWeights(const std::string& module, int channels)> norm;
};
// The official decoder structure of cfg, every module taken from `source` (the one place that walks it).
DecoderWeights assemble_decoder_weights(const VaeConfig& cfg, const WeightSource& source);

}  // namespace sparvar::bsq_vae

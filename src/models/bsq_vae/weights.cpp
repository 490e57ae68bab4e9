#include "models/bsq_vae/weights.h"

#include <fmt/format.h>

#include <set>

#include "io/checkpoint.h"
#include "models/bsq_vae/keys.h"

namespace sparvar::bsq_vae {
namespace {

// Uploads tensors by module name and remembers which keys it consumed.
class Loader {
 public:
  Loader(const io::Checkpoint& ckpt, Backend& backend, DType dtype)
      : ckpt_(ckpt), keys_(ckpt), backend_(backend), dtype_(dtype) {}

  ConvWeights conv(const std::string& module, int cin, int cout, int k) {
    ConvWeights c;
    c.w = load(keys_.conv(module, "weight"), {cout, cin, k, k});
    c.b = load(keys_.conv(module, "bias"), {cout});
    c.pad = k / 2;
    return c;
  }

  NormWeights norm(const std::string& module, int channels) {
    NormWeights n;
    n.w = load(keys_.norm(module, "weight"), {channels});
    n.b = load(keys_.norm(module, "bias"), {channels});
    n.groups = norm_groups(channels);
    return n;
  }

  void reject_unused_decoder_keys() const {
    const std::string scope = keys_.prefix() + "decoder.";
    for (const auto& t : ckpt_.tensors()) {
      if (t.name.rfind(scope, 0) == 0 && !used_.count(t.name)) {
        fail("checkpoint {}: unexpected decoder key '{}' {} for the configured decoder", ckpt_.path(), t.name,
             shape_string(t.shape));
      }
    }
  }

 private:
  Tensor load(const std::string& key, const Shape& shape) {
    used_.insert(key);
    return backend_.upload(ckpt_.tensor(key, shape), dtype_);
  }

  const io::Checkpoint& ckpt_;
  KeyResolver keys_;
  Backend& backend_;
  DType dtype_;
  std::set<std::string> used_;
};

ResBlockWeights resblock(const WeightSource& src, const std::string& module, int cin, int cout) {
  ResBlockWeights r;
  r.norm1 = src.norm(module + ".norm1", cin);
  r.conv1 = src.conv(module + ".conv1", cin, cout, 3);
  r.norm2 = src.norm(module + ".norm2", cout);
  r.conv2 = src.conv(module + ".conv2", cout, cout, 3);
  r.has_shortcut = cin != cout;
  if (r.has_shortcut) r.shortcut = src.conv(module + ".nin_shortcut", cin, cout, 1);
  return r;
}

}  // namespace

DecoderWeights assemble_decoder_weights(const VaeConfig& cfg, const WeightSource& src) {
  DecoderWeights w;
  int c = cfg.level_channels(cfg.levels() - 1);
  w.conv_in = src.conv("decoder.conv_in", cfg.codebook_dim, c, 3);
  w.mid1 = resblock(src, "decoder.mid.block_1", c, c);
  w.mid2 = resblock(src, "decoder.mid.block_2", c, c);
  w.up.resize(static_cast<size_t>(cfg.levels()));
  for (int i = cfg.levels() - 1; i >= 0; --i) {
    auto& lvl = w.up[static_cast<size_t>(i)];
    const int cout = cfg.level_channels(i);
    for (int j = 0; j < cfg.num_res_blocks + 1; ++j) {
      lvl.blocks.push_back(resblock(src, fmt::format("decoder.up.{}.block.{}", i, j), c, cout));
      c = cout;
    }
    lvl.has_upsample = cfg.has_upsample(i);
    if (lvl.has_upsample) lvl.upsample = src.conv(fmt::format("decoder.up.{}.upsample.conv", i), c, c, 3);
  }
  w.norm_out = src.norm("decoder.norm_out", c);
  w.conv_out = src.conv("decoder.conv_out", c, cfg.out_channels, 3);
  return w;
}

DecoderWeights load_decoder_weights(const io::Checkpoint& ckpt, const VaeConfig& cfg, Backend& backend,
                                    DType dtype) {
  cfg.validate();
  Loader ld(ckpt, backend, dtype);
  WeightSource src;
  src.conv = [&](const std::string& module, int cin, int cout, int k) { return ld.conv(module, cin, cout, k); };
  src.norm = [&](const std::string& module, int channels) { return ld.norm(module, channels); };
  DecoderWeights w = assemble_decoder_weights(cfg, src);
  ld.reject_unused_decoder_keys();
  return w;
}

}  // namespace sparvar::bsq_vae

#include "models/bsq_vae/keys.h"

#include "core/error.h"
#include "io/checkpoint.h"

namespace sparvar::bsq_vae {

KeyResolver::KeyResolver(const io::Checkpoint& ckpt) : ckpt_(ckpt) {
  for (const char* p : {"vae.", "ema.", ""}) {
    const std::string prefix = p;
    if (ckpt.contains(prefix + "decoder.conv_in.conv.weight") || ckpt.contains(prefix + "decoder.conv_in.weight")) {
      prefix_ = prefix;
      return;
    }
  }
  fail("checkpoint {} holds no BSQ-VAE decoder: none of 'vae.decoder.conv_in.conv.weight', "
       "'ema.decoder.conv_in.conv.weight', 'decoder.conv_in.conv.weight' (or the unwrapped '...conv_in.weight')",
       ckpt.path());
}

std::string KeyResolver::wrapped_or_plain(const std::string& module, const std::string& wrapper,
                                          const std::string& leaf) const {
  const std::string wrapped = prefix_ + module + "." + wrapper + "." + leaf;
  if (ckpt_.contains(wrapped)) return wrapped;
  const std::string unwrapped = prefix_ + module + "." + leaf;
  if (ckpt_.contains(unwrapped)) return unwrapped;
  return wrapped;
}

std::string KeyResolver::conv(const std::string& module, const std::string& leaf) const {
  return wrapped_or_plain(module, "conv", leaf);
}

std::string KeyResolver::norm(const std::string& module, const std::string& leaf) const {
  return wrapped_or_plain(module, "norm", leaf);
}

bool KeyResolver::has_conv(const std::string& module) const { return ckpt_.contains(conv(module, "weight")); }

}  // namespace sparvar::bsq_vae

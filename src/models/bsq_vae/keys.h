// Key names of the BSQ-VAE decoder in an official file. The file is {'vae': state_dict} (or {'ema': ...}),
// which our torch reader flattens to 'vae.decoder....'; a bare state dict has no prefix. Convs and norms are
// stored wrapped ('decoder.conv_in.conv.weight', 'decoder.norm_out.norm.weight') or, in files saved from the
// unwrapped modules, without the wrapper ('decoder.conv_in.weight'); the official loader takes both, so do we.
#pragma once

#include <string>

namespace sparvar::io {
class Checkpoint;
}

namespace sparvar::bsq_vae {

class KeyResolver {
 public:
  explicit KeyResolver(const io::Checkpoint& ckpt);

  const std::string& prefix() const { return prefix_; }
  // module is e.g. "decoder.conv_in" (a Conv) or "decoder.norm_out" (a Normalize); leaf "weight" / "bias".
  // Returns the key present in the file: wrapped spelling first, then unwrapped. When neither is present it
  // returns the wrapped spelling, so the checkpoint's error names the key the official layout expects.
  std::string conv(const std::string& module, const std::string& leaf) const;
  std::string norm(const std::string& module, const std::string& leaf) const;
  // Without wrapper resolution (plain keys): prefix + name.
  std::string plain(const std::string& name) const { return prefix_ + name; }
  bool has_conv(const std::string& module) const;

 private:
  std::string wrapped_or_plain(const std::string& module, const std::string& wrapper, const std::string& leaf) const;
  const io::Checkpoint& ckpt_;
  std::string prefix_;
};

}  // namespace sparvar::bsq_vae

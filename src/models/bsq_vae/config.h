// Shape of a BSQ-VAE decoder (Infinity's visual tokenizer). Two official variants:
//   d32: codebook_dim 32, patch 16, ch_mult {1,2,4,4,4}   (infinity_vae_d32_reg.pth, Infinity-2B)
//   d56: codebook_dim 14, patch 8,  ch_mult {1,2,4,4}     (infinity_vae_d56_f8_14_patchify.pth, Infinity-8B;
//        the transformer sees 2x2-patchified latents, 4 x 14 = 56 bits per token)
// plus tiny test variants. A config comes from a preset name or is inferred from a checkpoint's shapes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparvar::io {
class Checkpoint;
}

namespace sparvar::bsq_vae {

struct VaeConfig {
  int codebook_dim = 32;              // latent channels the decoder takes
  int patch_size = 16;                // image pixels per latent cell (2^number of upsampling levels)
  int base_ch = 128;                  // channels of level 0
  std::vector<int> ch_mult{1, 2, 4, 4, 4};
  int num_res_blocks = 2;             // per encoder level; the decoder has num_res_blocks + 1 per level
  int out_channels = 3;

  int levels() const { return static_cast<int>(ch_mult.size()); }
  int level_channels(int level) const { return base_ch * ch_mult.at(static_cast<size_t>(level)); }
  int upsample_levels() const;        // log2(patch_size): levels 1..n upsample
  bool has_upsample(int level) const { return level >= 1 && level <= upsample_levels(); }
  bool patchify() const { return patch_size == 8; }  // d56-style: 2x2 token patchify on the transformer side

  // Throws Error naming the field when the config cannot describe a decoder.
  void validate() const;
  std::string describe() const;
  bool operator==(const VaeConfig&) const = default;
};

// GroupNorm groups the official Normalize uses: 32, or 24 when channels % 32 != 0.
int norm_groups(int channels);

// "vae_d32" / "d32", "vae_d56" / "d56", "vae_tiny_d32", "vae_tiny_d56". Throws listing the known names.
VaeConfig vae_preset(const std::string& name);
std::vector<std::string> vae_preset_names();

class KeyResolver;
// Reads every structural number from the decoder's tensor shapes (mult[0] = 1, as in all official files).
VaeConfig infer_vae_config(const io::Checkpoint& ckpt, const KeyResolver& keys);

}  // namespace sparvar::bsq_vae

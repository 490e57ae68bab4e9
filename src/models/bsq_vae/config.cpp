#include "models/bsq_vae/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "io/checkpoint.h"
#include "models/bsq_vae/keys.h"

namespace sparvar::bsq_vae {

int VaeConfig::upsample_levels() const {
  int n = 0;
  while ((1 << n) < patch_size) ++n;
  return n;
}

int norm_groups(int channels) { return channels % 32 == 0 ? 32 : 24; }

void VaeConfig::validate() const {
  SPARVAR_CHECK(codebook_dim >= 1 && codebook_dim <= 64, "BSQ-VAE config: codebook_dim {} outside [1, 64]",
                codebook_dim);
  SPARVAR_CHECK(patch_size >= 2 && (patch_size & (patch_size - 1)) == 0,
                "BSQ-VAE config: patch_size {} is not a power of two >= 2", patch_size);
  SPARVAR_CHECK(!ch_mult.empty(), "BSQ-VAE config: ch_mult is empty");
  // Levels 1..log2(patch) upsample, level 0 never does: there must be at least log2(patch) + 1 levels.
  SPARVAR_CHECK(upsample_levels() < levels(),
                "BSQ-VAE config: patch_size {} needs {} upsampling levels but ch_mult {} has only {} levels",
                patch_size, upsample_levels(), ch_mult, levels());
  SPARVAR_CHECK(base_ch >= 1 && num_res_blocks >= 0 && out_channels >= 1,
                "BSQ-VAE config: base_ch {}, num_res_blocks {}, out_channels {} must be positive", base_ch,
                num_res_blocks, out_channels);
  for (int i = 0; i < levels(); ++i) {
    const int c = level_channels(i);
    SPARVAR_CHECK(ch_mult[static_cast<size_t>(i)] >= 1 && c % norm_groups(c) == 0,
                  "BSQ-VAE config: level {} has {} channels, not divisible by 32 or 24 (GroupNorm groups)", i, c);
  }
}

std::string VaeConfig::describe() const {
  return fmt::format("codebook_dim {}, patch {}, base_ch {}, ch_mult {}, res blocks {}", codebook_dim, patch_size,
                     base_ch, ch_mult, num_res_blocks);
}

std::vector<std::string> vae_preset_names() { return {"vae_d32", "vae_d56", "vae_tiny_d32", "vae_tiny_d56"}; }

VaeConfig vae_preset(const std::string& name) {
  VaeConfig c;
  if (name == "vae_d32" || name == "d32") return c;
  if (name == "vae_d56" || name == "d56") {
    c.codebook_dim = 14, c.patch_size = 8, c.ch_mult = {1, 2, 4, 4};
    return c;
  }
  // The reference's test variants: same structure, 24 base channels, 1 res block per level.
  if (name == "vae_tiny_d32") {
    c.base_ch = 24, c.ch_mult = {1, 1, 2, 2, 2}, c.num_res_blocks = 1;
    return c;
  }
  if (name == "vae_tiny_d56") {
    c.codebook_dim = 14, c.patch_size = 8, c.base_ch = 24, c.ch_mult = {1, 1, 2, 2}, c.num_res_blocks = 1;
    return c;
  }
  fail("unknown BSQ-VAE preset '{}' (known: {})", name, fmt::join(vae_preset_names(), ", "));
}

VaeConfig infer_vae_config(const io::Checkpoint& ckpt, const KeyResolver& keys) {
  auto conv_shape = [&](const std::string& module) { return ckpt.info(keys.conv(module, "weight")).shape; };
  auto block = [](int level, int j) { return fmt::format("decoder.up.{}.block.{}", level, j); };

  VaeConfig c;
  const Shape in = conv_shape("decoder.conv_in");
  SPARVAR_CHECK(in.size() == 4, "{}: decoder.conv_in weight is {}, expected [C, d, 3, 3]", ckpt.path(),
                shape_string(in));
  c.codebook_dim = static_cast<int>(in[1]);
  const Shape out = conv_shape("decoder.conv_out");
  SPARVAR_CHECK(out.size() == 4, "{}: decoder.conv_out weight is {}, expected [3, C, 3, 3]", ckpt.path(),
                shape_string(out));
  c.out_channels = static_cast<int>(out[0]);

  int levels = 0;
  while (keys.has_conv(block(levels, 0) + ".conv1")) ++levels;
  SPARVAR_CHECK(levels > 0, "{}: no decoder levels (missing '{}')", ckpt.path(),
                keys.conv(block(0, 0) + ".conv1", "weight"));
  int blocks = 0;
  while (keys.has_conv(block(0, blocks) + ".conv1")) ++blocks;
  c.num_res_blocks = blocks - 1;
  c.base_ch = static_cast<int>(conv_shape(block(0, 0) + ".conv1")[0]);
  c.ch_mult.clear();
  for (int i = 0; i < levels; ++i) {
    const int ch = static_cast<int>(conv_shape(block(i, 0) + ".conv1")[0]);
    SPARVAR_CHECK(ch % c.base_ch == 0, "{}: decoder level {} has {} channels, not a multiple of level 0's {}",
                  ckpt.path(), i, ch, c.base_ch);
    c.ch_mult.push_back(ch / c.base_ch);
  }
  int ups = 0;
  for (int i = 0; i < levels; ++i) ups += keys.has_conv(fmt::format("decoder.up.{}.upsample.conv", i)) ? 1 : 0;
  c.patch_size = 1 << ups;
  c.validate();
  return c;
}

}  // namespace sparvar::bsq_vae

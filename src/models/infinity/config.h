// Infinity transformer hyper-parameters: the named configs of our reference (python/sparvar_ref/infinity.py)
// and the inference of a config from a checkpoint's shapes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sparvar::io {
class Checkpoint;
}

namespace sparvar::infinity {

struct InfinityConfig {
  std::string name = "custom";
  int depth = 32;
  int embed_dim = 2048;
  int num_heads = 16;
  int ffn_hidden = 8192;       // round(embed_dim * mlp_ratio / 256) * 256
  int text_channels = 2048;    // T5 d_model
  int text_maxlen = 512;       // rows of cfg_uncond
  int vae_codebook_dim = 32;   // bits per VAE latent position
  bool spatial_patchify = false;  // d56: a token holds a 2x2 latent patch (4 x 14 bits)
  int block_chunks = 8;        // 1: keys 'blocks.N.*', else 'block_chunks.{c}.module.{j}.*'
  int num_lvl = 15;            // rows of lvl_embed (>= number of scales)
  int pool_heads = 16;         // heads of the attentive text pool (start token)
  float norm_eps = 1e-6f;

  int head_dim() const { return embed_dim / num_heads; }
  int d_vae() const { return vae_codebook_dim * (spatial_patchify ? 4 : 1); }
  // Checkpoint key prefix of block i, e.g. "block_chunks.3.module.1." or "blocks.7.".
  std::string block_prefix(int i) const;
  std::string describe() const;
};

// Throws Error unless every field is positive and consistent (heads divide width, chunks divide depth, ...).
void validate(const InfinityConfig& config);

// "infinity_2b", "infinity_8b", "infinity_tiny", "infinity_tiny_p", "infinity_small".
std::vector<std::string> config_names();
// Throws Error listing the names when unknown.
InfinityConfig named_config(std::string_view name);

// Reads depth, widths, heads, text width, bits and block layout from the checkpoint's keys and shapes.
// spatial_patchify is inferred as d_vae == 56 (the only patchified model: 14 bits x 2x2).
InfinityConfig infer_config(const io::Checkpoint& ckpt);

}  // namespace sparvar::infinity

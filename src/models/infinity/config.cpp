#include "models/infinity/config.h"

#include <cmath>
#include <regex>
#include <set>

#include "core/error.h"
#include "io/checkpoint.h"

namespace sparvar::infinity {
namespace {

int ffn_hidden_for(int embed_dim, double mlp_ratio = 4.0) {
  return static_cast<int>(std::lround(embed_dim * mlp_ratio / 256.0)) * 256;
}

// TextAttentivePool: heads = Ct5 / (128 if D <= 4096 else 64).
int pool_heads_for(int text_channels, int embed_dim) { return text_channels / (embed_dim <= 4096 ? 128 : 64); }

InfinityConfig make(std::string name, int depth, int width, int heads, int text_channels, int text_maxlen,
                    int codebook_dim, bool patchify, int chunks) {
  InfinityConfig c;
  c.name = std::move(name);
  c.depth = depth;
  c.embed_dim = width;
  c.num_heads = heads;
  c.ffn_hidden = ffn_hidden_for(width);
  c.text_channels = text_channels;
  c.text_maxlen = text_maxlen;
  c.vae_codebook_dim = codebook_dim;
  c.spatial_patchify = patchify;
  c.block_chunks = chunks;
  c.pool_heads = pool_heads_for(text_channels, width);
  return c;
}

std::vector<InfinityConfig> all_configs() {
  return {make("infinity_2b", 32, 2048, 16, 2048, 512, 32, false, 8),
          make("infinity_8b", 40, 3584, 28, 2048, 512, 14, true, 8),
          make("infinity_tiny", 2, 128, 2, 128, 64, 32, false, 2),
          make("infinity_tiny_p", 2, 128, 2, 128, 64, 14, true, 2),
          make("infinity_small", 4, 256, 4, 256, 128, 32, false, 2)};
}

}  // namespace

std::string InfinityConfig::block_prefix(int i) const {
  if (block_chunks <= 1) return fmt::format("blocks.{}.", i);
  const int per_chunk = depth / block_chunks;
  return fmt::format("block_chunks.{}.module.{}.", i / per_chunk, i % per_chunk);
}

std::string InfinityConfig::describe() const {
  // Also called to report an invalid config: no division by a head count that may be zero.
  const std::string head_dim_text = num_heads > 0 ? std::to_string(head_dim()) : std::string("?");
  return fmt::format("{}: {} layers, width {}, {} heads x {}, FFN {}, text {} (max {}), {} bits/token{}, {} chunks",
                     name, depth, embed_dim, num_heads, head_dim_text, ffn_hidden, text_channels, text_maxlen, d_vae(),
                     spatial_patchify ? " (2x2 patchify)" : "", block_chunks);
}

void validate(const InfinityConfig& c) {
  SPARVAR_CHECK(c.depth > 0 && c.embed_dim > 0 && c.num_heads > 0 && c.ffn_hidden > 0 && c.text_channels > 0 &&
                    c.text_maxlen > 0 && c.vae_codebook_dim > 0 && c.num_lvl > 0 && c.pool_heads > 0 && c.block_chunks > 0,
                "Infinity config {}: every size must be positive ({})", c.name, c.describe());
  SPARVAR_CHECK(c.embed_dim % c.num_heads == 0, "Infinity config {}: {} heads do not divide width {}", c.name,
                c.num_heads, c.embed_dim);
  SPARVAR_CHECK(c.head_dim() % 4 == 0, "Infinity config {}: head dim {} must be a multiple of 4 (2-D RoPE)", c.name,
                c.head_dim());
  SPARVAR_CHECK(c.embed_dim % c.pool_heads == 0, "Infinity config {}: {} pool heads do not divide width {}", c.name,
                c.pool_heads, c.embed_dim);
  SPARVAR_CHECK(c.depth % c.block_chunks == 0, "Infinity config {}: {} block chunks do not divide depth {}", c.name,
                c.block_chunks, c.depth);
}

std::vector<std::string> config_names() {
  std::vector<std::string> names;
  for (const auto& c : all_configs()) names.push_back(c.name);
  return names;
}

InfinityConfig named_config(std::string_view name) {
  for (const auto& c : all_configs())
    if (c.name == name) return c;
  fail("unknown Infinity config '{}' (known: {})", name, fmt::join(config_names(), ", "));
}

InfinityConfig infer_config(const io::Checkpoint& ckpt) {
  auto dims = [&](const std::string& key) -> const Shape& { return ckpt.info(key).shape; };
  auto dim = [&](const std::string& key, size_t rank, size_t i) {
    const Shape& s = dims(key);
    SPARVAR_CHECK(s.size() == rank, "checkpoint {}: key {} has shape {}, expected {} dimensions", ckpt.path(), key,
                  shape_string(s), rank);
    return static_cast<int>(s[i]);
  };
  InfinityConfig c;
  c.name = "from checkpoint";
  c.embed_dim = dim("word_embed.weight", 2, 0);
  const int d_vae = dim("word_embed.weight", 2, 1);
  c.spatial_patchify = d_vae == 56;
  c.vae_codebook_dim = c.spatial_patchify ? 14 : d_vae;
  c.text_maxlen = dim("cfg_uncond", 2, 0);
  c.text_channels = dim("cfg_uncond", 2, 1);
  c.num_lvl = dim("lvl_embed.weight", 2, 0);
  c.pool_heads = dim("text_proj_for_sos.ca.mat_q", 3, 1);

  // Blocks: count 'blocks.N.ada_gss' or 'block_chunks.C.module.J.ada_gss'.
  static const std::regex flat(R"(blocks\.(\d+)\.ada_gss)");
  static const std::regex chunked(R"(block_chunks\.(\d+)\.module\.(\d+)\.ada_gss)");
  std::set<int> chunks;
  int flat_blocks = 0, chunked_blocks = 0;
  std::smatch m;
  for (const auto& t : ckpt.tensors()) {
    if (std::regex_match(t.name, m, flat)) ++flat_blocks;
    if (std::regex_match(t.name, m, chunked)) {
      ++chunked_blocks;
      chunks.insert(std::stoi(m[1].str()));
    }
  }
  SPARVAR_CHECK(flat_blocks + chunked_blocks > 0, "checkpoint {} has no Infinity blocks (no 'blocks.N.ada_gss' or "
                "'block_chunks.C.module.J.ada_gss' keys)", ckpt.path());
  SPARVAR_CHECK(flat_blocks == 0 || chunked_blocks == 0, "checkpoint {} mixes 'blocks.N' and 'block_chunks.C' keys",
                ckpt.path());
  c.depth = flat_blocks + chunked_blocks;
  c.block_chunks = flat_blocks ? 1 : static_cast<int>(chunks.size());
  SPARVAR_CHECK(c.block_chunks > 0 && c.depth % c.block_chunks == 0,
                "checkpoint {}: {} blocks cannot be split in {} chunks", ckpt.path(), c.depth, c.block_chunks);
  const std::string b0 = c.block_prefix(0);
  c.num_heads = dim(b0 + "sa.scale_mul_1H11", 4, 1);
  c.ffn_hidden = dim(b0 + "ffn.fc1.weight", 2, 0);
  validate(c);
  // Name it after the matching named config, if any.
  for (const auto& n : all_configs())
    if (n.depth == c.depth && n.embed_dim == c.embed_dim && n.num_heads == c.num_heads &&
        n.text_channels == c.text_channels && n.d_vae() == c.d_vae() && n.ffn_hidden == c.ffn_hidden &&
        n.block_chunks == c.block_chunks)
      c.name = n.name;
  return c;
}

}  // namespace sparvar::infinity

#include "models/pipeline/model_bundle.h"

#include <chrono>

#include "core/error.h"
#include "io/checkpoint.h"

namespace sparvar::pipeline {

std::string infinity_config_difference(const infinity::InfinityConfig& a, const infinity::InfinityConfig& b) {
  std::vector<std::string> diffs;
  auto cmp = [&](const char* name, auto x, auto y) {
    if (x != y) diffs.push_back(fmt::format("{} {} (manifest) vs {} (file)", name, x, y));
  };
  cmp("depth", a.depth, b.depth);
  cmp("embed_dim", a.embed_dim, b.embed_dim);
  cmp("num_heads", a.num_heads, b.num_heads);
  cmp("ffn hidden (mlp_ratio)", a.ffn_hidden, b.ffn_hidden);
  cmp("text_channels", a.text_channels, b.text_channels);
  cmp("text_maxlen", a.text_maxlen, b.text_maxlen);
  cmp("vae_codebook_dim", a.vae_codebook_dim, b.vae_codebook_dim);
  cmp("spatial_patchify", a.spatial_patchify, b.spatial_patchify);
  cmp("block_chunks", a.block_chunks, b.block_chunks);
  cmp("num_lvl", a.num_lvl, b.num_lvl);
  cmp("pool heads", a.pool_heads, b.pool_heads);
  return fmt::format("{}", fmt::join(diffs, ", "));
}

std::unique_ptr<ModelBundle> ModelBundle::load(const std::filesystem::path& dir, Backend& backend) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<ModelBundle> b(new ModelBundle());
  b->manifest_ = read_manifest(dir);
  b->backend_ = &backend;
  const ModelManifest& m = b->manifest_;
  const DType dtype = infinity::compute_dtype(backend);

  // Transformer: the file's shapes must say what the manifest says (norm_eps cannot be seen in shapes).
  const io::Checkpoint ckpt = io::open_checkpoint(m.infinity_path);
  const infinity::InfinityConfig from_file = infinity::infer_config(ckpt);
  const std::string diff = infinity_config_difference(m.infinity, from_file);
  SPARVAR_CHECK(diff.empty(), "{}: the Infinity config in manifest.json does not match {}: {}",
                (dir / "manifest.json").string(), m.infinity_path.string(), diff);
  b->infinity_ = std::make_unique<infinity::InfinityModel>(backend, infinity::load_weights(ckpt, m.infinity, backend));

  // VAE decoder: the inferred config must equal the manifest's.
  b->vae_ = std::make_unique<bsq_vae::BsqVaeDecoder>(bsq_vae::BsqVaeDecoder::load(m.vae_path, backend, dtype));
  SPARVAR_CHECK(b->vae_->config() == m.vae, "{}: the VAE config in manifest.json ({}) does not match {} ({})",
                (dir / "manifest.json").string(), m.vae.describe(), m.vae_path.string(), b->vae_->config().describe());

  // Text encoder + tokenizer.
  b->t5_ = std::make_unique<t5::T5Encoder>(t5::T5Encoder::load(m.t5_dir, backend, dtype));
  SPARVAR_CHECK(b->t5_->config().d_model == m.infinity.text_channels,
                "{}: the T5 encoder has d_model {}, the transformer reads {} text channels", m.t5_dir.string(),
                b->t5_->config().d_model, m.infinity.text_channels);
  b->tokenizer_ = std::make_unique<t5::T5Tokenizer>(m.tokenizer, m.max_tokens);
  SPARVAR_CHECK(b->tokenizer_->vocab_size() <= b->t5_->config().vocab_size,
                "{}: the tokenizer has {} pieces, more than the T5 embedding's {} rows", m.tokenizer.string(),
                b->tokenizer_->vocab_size(), b->t5_->config().vocab_size);
  backend.synchronize();
  b->load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return b;
}

}  // namespace sparvar::pipeline

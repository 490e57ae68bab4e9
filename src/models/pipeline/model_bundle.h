// A model folder loaded and ready to draw: the T5 tokenizer + encoder, the Infinity transformer and the
// BSQ-VAE decoder, all on one backend, each checked against the manifest (a file whose shapes contradict the
// manifest's config is an Error naming the field, not a silently wrong image).
#pragma once

#include <filesystem>
#include <memory>

#include "backend/backend.h"
#include "models/bsq_vae/decoder.h"
#include "models/infinity/generator.h"
#include "models/pipeline/manifest.h"
#include "models/t5/encoder.h"
#include "models/t5/tokenizer.h"

namespace sparvar::pipeline {

class ModelBundle {
 public:
  // Reads dir/manifest.json and loads the three models onto `backend` (which must outlive the bundle).
  static std::unique_ptr<ModelBundle> load(const std::filesystem::path& dir, Backend& backend);

  const ModelManifest& manifest() const { return manifest_; }
  Backend& backend() const { return *backend_; }
  const t5::T5Tokenizer& tokenizer() const { return *tokenizer_; }
  t5::T5Encoder& text_encoder() { return *t5_; }
  infinity::InfinityModel& transformer() { return *infinity_; }
  bsq_vae::BsqVaeDecoder& vae() { return *vae_; }
  double load_ms() const { return load_ms_; }

 private:
  ModelBundle() = default;
  ModelManifest manifest_;
  Backend* backend_ = nullptr;
  std::unique_ptr<t5::T5Tokenizer> tokenizer_;
  std::unique_ptr<t5::T5Encoder> t5_;
  std::unique_ptr<infinity::InfinityModel> infinity_;
  std::unique_ptr<bsq_vae::BsqVaeDecoder> vae_;
  double load_ms_ = 0;
};

// The structural fields where two Infinity configs differ ("depth 8 vs 4, ..."); empty when they agree.
std::string infinity_config_difference(const infinity::InfinityConfig& manifest, const infinity::InfinityConfig& file);

}  // namespace sparvar::pipeline

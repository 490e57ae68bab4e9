// manifest.json of a model folder (python/train/export_model.py writes it, python/sparvar_ref/load.py reads
// it): where the transformer, the VAE and the T5 encoder live, their configs, the image size, the scale
// schedule and the sampling defaults. Parsed strictly: an unknown field, a missing file or a config that
// the files contradict is an Error naming the folder and the field.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "attention/schedule.h"
#include "models/bsq_vae/config.h"
#include "models/infinity/config.h"

namespace sparvar::pipeline {

struct SamplingDefaults {
  float cfg = 3.0f;
  float tau = 1.0f;
  int top_k = 0;      // 0 = off (see infinity::SamplingParams)
  float top_p = 0.0f; // 0 = off
};

struct ModelManifest {
  std::filesystem::path dir;          // the folder the manifest was read from
  std::string name;
  std::string dtype;                  // storage dtype of the exported weights ("fp16", ...), informational

  std::string infinity_name;
  infinity::InfinityConfig infinity;  // from the manifest's "config" (checked against the file's shapes on load)
  std::filesystem::path infinity_path;

  std::string vae_name;
  bsq_vae::VaeConfig vae;
  std::filesystem::path vae_path;

  std::string t5_name;
  std::filesystem::path t5_dir;       // transformers folder: config.json + weights
  std::filesystem::path tokenizer;    // spiece.model
  int max_tokens = 512;               // prompt tokens incl. EOS
  bool lowercase = true;              // our tokenizer was trained on lower-cased captions

  int image_h = 0, image_w = 0;       // pixels of the default schedule's last grid
  ScaleSchedule schedule;             // the default (trained) schedule of token grids
  SamplingDefaults sampling;
};

// Reads and validates dir/manifest.json; every referenced file must exist.
ModelManifest read_manifest(const std::filesystem::path& dir);

// Same, from JSON text (dir resolves the relative paths): for tests.
ModelManifest parse_manifest(const std::string& json_text, const std::filesystem::path& dir);

}  // namespace sparvar::pipeline

// What several subcommands take from their flags the same way: the checkpoint files of a model folder and
// the scale schedule of a --size / --aspect / --schedule choice (Infinity's templates).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "attention/schedule.h"

namespace sparvar::cli {

// A folder written by make_random_checkpoint.py or laid out like the official release: the transformer
// (infinity.pth, infinity.safetensors or the sharded infinity_weights/) and the BSQ-VAE (vae.pth) inside.
// A file or a shard index is taken as the transformer itself.
std::filesystem::path transformer_path(const std::filesystem::path& model);

struct ModelFiles {
  std::filesystem::path transformer, vae;
};
// vae empty = vae.pth beside the transformer. Errors name what is missing.
ModelFiles locate_model_files(const std::filesystem::path& model, const std::filesystem::path& vae);

// schedule: custom token grids ("1,2,4" or "1x1,2x3"), else size: a pixel budget (0.06M, 0.25M, 0.60M, 1M;
// empty = 1M) with aspect (default 1), or an exact HxW of one of Infinity's templates (16 pixels per token).
// Unsupported sizes are an Error listing the supported ones.
ScaleSchedule schedule_from_flags(const std::string& size, std::optional<double> aspect,
                                  const std::string& schedule = "");

// Fails (one line) unless `path` can be created: its folder exists and takes a new file.
void require_writable_file(const std::filesystem::path& path);

}  // namespace sparvar::cli

// Where the shipped model lives when --model is not given: $SPARVAR_MODEL_DIR (a model folder, or a folder
// holding sparvar-small/), else the source tree's models/sparvar-small (compiled in), else ./models/sparvar-small.
#pragma once

#include <filesystem>
#include <string>

namespace sparvar::pipeline {

inline constexpr const char* kShippedModelName = "sparvar-small";

struct ModelLocation {
  std::filesystem::path dir;
  std::string source;   // "--model", "$SPARVAR_MODEL_DIR", "source tree", "./models"
};

// explicit_dir non-empty: that folder. Otherwise the first candidate holding a manifest.json (or, when none
// does, the first candidate, so the error names a real place). Never throws.
ModelLocation locate_model(const std::string& explicit_dir);

// Throws a one-line Error when `loc.dir` is not a model folder, saying how to get the model.
void require_model_folder(const ModelLocation& loc);

}  // namespace sparvar::pipeline

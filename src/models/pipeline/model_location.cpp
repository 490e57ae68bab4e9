#include "models/pipeline/model_location.h"

#include <cstdlib>
#include <system_error>
#include <vector>

#include "core/error.h"

namespace sparvar::pipeline {
namespace fs = std::filesystem;

namespace {
bool has_manifest(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "manifest.json", ec);
}
}  // namespace

ModelLocation locate_model(const std::string& explicit_dir) {
  if (!explicit_dir.empty()) return {explicit_dir, "--model"};
  std::vector<ModelLocation> candidates;
  if (const char* env = std::getenv("SPARVAR_MODEL_DIR"); env && *env) {
    // An explicit setting is obeyed: a wrong one is an error, never a silent fall-back to another model.
    const ModelLocation inside{fs::path(env) / kShippedModelName, "$SPARVAR_MODEL_DIR"};
    return has_manifest(env) ? ModelLocation{env, "$SPARVAR_MODEL_DIR"} : inside;
  }
#ifdef SPARVAR_MODELS_DIR
  candidates.push_back({fs::path(SPARVAR_MODELS_DIR) / kShippedModelName, "source tree"});
#endif
  candidates.push_back({fs::path("models") / kShippedModelName, "./models"});
  for (const auto& c : candidates)
    if (has_manifest(c.dir)) return c;
  return candidates.front();  // nothing found: name the source tree's folder, the one to fill
}

void require_model_folder(const ModelLocation& loc) {
  std::error_code ec;
  if (has_manifest(loc.dir)) return;
  const std::string how =
      "get the model: train and export it (python/train/README.md: train_all.sh writes .data/export/sparvar-small), "
      "copy that folder to models/sparvar-small, or pass --model DIR / set SPARVAR_MODEL_DIR";
  if (!fs::exists(loc.dir, ec)) fail("model folder {} (from {}) does not exist; {}", loc.dir.string(), loc.source, how);
  fail("{} (from {}) has no manifest.json, so it is not a sparvar model folder; {}", loc.dir.string(), loc.source, how);
}

}  // namespace sparvar::pipeline

#include "cli/model_files.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace sparvar::cli {

namespace fs = std::filesystem;

fs::path transformer_path(const fs::path& model) {
  if (fs::is_directory(model)) {
    for (const char* name : {"infinity.pth", "infinity.safetensors"})
      if (fs::exists(model / name)) return model / name;
    if (fs::is_directory(model / "infinity_weights")) return model / "infinity_weights";
  }
  return model;
}

ModelFiles locate_model_files(const fs::path& model, const fs::path& vae) {
  SPARVAR_CHECK(fs::exists(model), "--model {}: no such file or folder", model.string());
  ModelFiles f{transformer_path(model), vae};
  if (f.vae.empty()) {
    const fs::path dir = fs::is_directory(model) ? model : model.parent_path();
    f.vae = dir / "vae.pth";
    SPARVAR_CHECK(fs::exists(f.vae), "no BSQ-VAE beside the model: {} does not exist (pass --vae FILE)", f.vae.string());
  }
  SPARVAR_CHECK(fs::exists(f.vae), "--vae {}: no such file", f.vae.string());
  return f;
}

namespace {

ScaleSchedule parse_schedule(const std::string& text) {
  std::vector<ScaleGrid> grids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int h = 0, w = 0;
    char x = 0;
    std::stringstream is(item);
    if (item.find('x') != std::string::npos ? !(is >> h >> x >> w) || x != 'x' : !(is >> h))
      fail("--schedule: cannot parse '{}' (want e.g. 1,2,4 or 1x1,2x3)", item);
    if (w == 0) w = h;
    SPARVAR_CHECK(h >= 1 && w >= 1, "--schedule: grid '{}' must be at least 1x1", item);
    grids.push_back({h, w});
  }
  return ScaleSchedule("custom", grids);
}

}  // namespace

ScaleSchedule schedule_from_flags(const std::string& size_text, std::optional<double> aspect,
                                  const std::string& schedule) {
  if (!schedule.empty()) return parse_schedule(schedule);
  const auto budgets = {PixelBudget::M0_06, PixelBudget::M0_25, PixelBudget::M0_60, PixelBudget::M1};
  const std::string size = size_text.empty() ? "1M" : size_text;
  if (size.find('x') == std::string::npos) return infinity_schedule(aspect.value_or(1.0), pixel_budget_from_name(size));
  std::vector<std::string> supported;
  for (double r : infinity_aspect_ratios())
    for (PixelBudget b : budgets) {
      const ScaleSchedule s = infinity_schedule(r, b);
      const std::string name = fmt::format("{}x{}", s.grids().back().h * 16, s.grids().back().w * 16);
      if (name == size) return s;
      supported.push_back(name);
    }
  fail("--size {} is not an Infinity image size; supported (HxW pixels): {}; or a budget: 0.06M, 0.25M, 0.60M, 1M "
       "with --aspect", size, fmt::join(supported, " "));
}

void require_writable_file(const fs::path& path) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  SPARVAR_CHECK(fs::is_directory(dir), "{}: folder {} does not exist", path.string(), dir.string());
  const bool existed = fs::exists(path);
  SPARVAR_CHECK(std::ofstream(path, std::ios::app).good(), "{}: cannot write there", path.string());
  if (!existed) fs::remove(path);
}

}  // namespace sparvar::cli

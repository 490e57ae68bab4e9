#include "models/pipeline/image_sizes.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "core/error.h"

namespace sparvar::pipeline {

int pixels_per_token(const ModelManifest& m) { return m.vae.patch_size * (m.infinity.spatial_patchify ? 2 : 1); }

SizeChoice default_size(const ModelManifest& m) {
  return {m.image_h, m.image_w, m.schedule, static_cast<double>(m.image_h) / m.image_w};
}

std::vector<SizeChoice> supported_sizes(const ModelManifest& m) {
  const int px = pixels_per_token(m);
  const int64_t max_tokens = m.schedule.grids().back().tokens();
  std::vector<SizeChoice> out{default_size(m)};
  for (double r : infinity_aspect_ratios()) {
    const ScaleSchedule full = infinity_schedule(r, PixelBudget::M1);
    for (int k = 1; k <= std::min(full.num_scales(), m.infinity.num_lvl); ++k) {
      const ScaleGrid g = full.grid(k - 1);
      if (g.tokens() > max_tokens) break;
      std::vector<ScaleGrid> grids(full.grids().begin(), full.grids().begin() + k);
      SizeChoice c{g.h * px, g.w * px, ScaleSchedule(fmt::format("{}x{}", g.h * px, g.w * px), grids), r};
      const bool seen = std::any_of(out.begin(), out.end(),
                                    [&](const SizeChoice& s) { return s.height == c.height && s.width == c.width; });
      if (!seen) out.push_back(std::move(c));
    }
  }
  return out;
}

namespace {

std::string size_list(const std::vector<SizeChoice>& sizes) {
  std::vector<std::string> names;
  for (const auto& s : sizes) names.push_back(fmt::format("{}x{}", s.height, s.width));
  return fmt::format("{}", fmt::join(names, " "));
}

}  // namespace

SizeChoice size_from_text(const ModelManifest& m, const std::string& text) {
  int h = 0, w = 0;
  char x = 0, extra = 0;
  const int n = std::sscanf(text.c_str(), "%d%c%d%c", &h, &x, &w, &extra);
  if (n == 1) w = h;
  SPARVAR_CHECK((n == 1 || (n == 3 && (x == 'x' || x == 'X'))) && h > 0 && w > 0,
                "--size '{}': want HxW pixels (e.g. {}x{}) or one number for a square", text, m.image_h, m.image_w);
  const std::vector<SizeChoice> sizes = supported_sizes(m);
  for (const auto& s : sizes)
    if (s.height == h && s.width == w) return s;
  fail("--size {}x{}: model {} cannot draw that size; supported (HxW pixels): {}", h, w, m.name, size_list(sizes));
}

SizeChoice size_from_aspect(const ModelManifest& m, double h_div_w) {
  SPARVAR_CHECK(h_div_w > 0 && std::isfinite(h_div_w), "--aspect {} must be a positive ratio h/w", h_div_w);
  const double r = nearest_infinity_aspect_ratio(h_div_w);
  SPARVAR_CHECK(std::abs(r - h_div_w) < 0.01, "--aspect {}: not one of Infinity's templates ({})", h_div_w,
                fmt::join(infinity_aspect_ratios(), ", "));
  if (std::abs(h_div_w - static_cast<double>(m.image_h) / m.image_w) < 0.01) return default_size(m);
  const int px = pixels_per_token(m);
  std::optional<SizeChoice> best;
  for (auto& s : supported_sizes(m))
    if (std::abs(s.aspect - r) < 1e-9 &&
        (!best || int64_t{s.height} * s.width > int64_t{best->height} * best->width))
      best = s;
  SPARVAR_CHECK(best.has_value(), "--aspect {}: no grid of that ratio fits model {} ({} px per token)", h_div_w, m.name,
                px);
  return *best;
}

}  // namespace sparvar::pipeline

#include "attention/schedule.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"

namespace sparvar {

ScaleSchedule::ScaleSchedule(std::string name, std::vector<ScaleGrid> grids)
    : name_(std::move(name)), grids_(std::move(grids)) {
  SPARVAR_CHECK(!grids_.empty(), "scale schedule '{}' has no scales", name_);
  for (const ScaleGrid& g : grids_) {
    SPARVAR_CHECK(g.h >= 1 && g.w >= 1, "scale schedule '{}' has an empty grid {}x{}", name_, g.h, g.w);
    offsets_.push_back(offsets_.back() + g.tokens());
  }
}

const ScaleGrid& ScaleSchedule::grid(int k) const {
  SPARVAR_CHECK(k >= 0 && k < num_scales(), "scale {} out of range for schedule '{}' ({} scales)", k, name_,
                num_scales());
  return grids_[k];
}

int64_t ScaleSchedule::offset(int k) const {
  SPARVAR_CHECK(k >= 0 && k <= num_scales(), "scale offset {} out of range for schedule '{}'", k, name_);
  return offsets_[k];
}

std::string ScaleSchedule::describe() const {
  std::string s;
  for (const ScaleGrid& g : grids_) s += fmt::format("{}{}x{}", s.empty() ? "" : " ", g.h, g.w);
  return s;
}

namespace {

// Infinity's ladders for h >= w, as (h, w) per scale; each budget uses a prefix. Facts of the model's
// training setup (its tokenizer saw exactly these grids), so they are data, not something to re-derive.
struct Ladder {
  ScaleGrid grids[13];
};
constexpr Ladder kTallLadders[] = {
    {{{1, 1}, {2, 2}, {4, 4}, {6, 6}, {8, 8}, {12, 12}, {16, 16}, {20, 20}, {24, 24}, {32, 32}, {40, 40}, {48, 48}, {64, 64}}},
    {{{1, 1}, {2, 2}, {3, 3}, {5, 4}, {10, 8}, {15, 12}, {20, 16}, {25, 20}, {30, 24}, {35, 28}, {45, 36}, {55, 44}, {70, 56}}},
    {{{1, 1}, {2, 2}, {4, 3}, {8, 6}, {12, 9}, {16, 12}, {20, 15}, {24, 18}, {28, 21}, {36, 27}, {48, 36}, {60, 45}, {72, 54}}},
    {{{1, 1}, {2, 2}, {3, 2}, {6, 4}, {9, 6}, {15, 10}, {21, 14}, {27, 18}, {33, 22}, {39, 26}, {48, 32}, {63, 42}, {78, 52}}},
    {{{1, 1}, {2, 2}, {3, 3}, {7, 4}, {11, 6}, {14, 8}, {21, 12}, {28, 16}, {35, 20}, {42, 24}, {56, 32}, {70, 40}, {84, 48}}},
    {{{1, 1}, {2, 2}, {4, 2}, {6, 3}, {10, 5}, {16, 8}, {22, 11}, {30, 15}, {38, 19}, {46, 23}, {60, 30}, {74, 37}, {90, 45}}},
    {{{1, 1}, {2, 2}, {5, 2}, {10, 4}, {15, 6}, {20, 8}, {25, 10}, {30, 12}, {40, 16}, {50, 20}, {65, 26}, {80, 32}, {100, 40}}},
    {{{1, 1}, {2, 2}, {6, 2}, {9, 3}, {15, 5}, {21, 7}, {27, 9}, {36, 12}, {45, 15}, {54, 18}, {72, 24}, {90, 30}, {111, 37}}},
};

// Grids per budget: the prefix length of a ladder.
int budget_scales(PixelBudget budget) {
  switch (budget) {
    case PixelBudget::M0_06: return 7;
    case PixelBudget::M0_25: return 10;
    case PixelBudget::M0_60: return 12;
    case PixelBudget::M1: return 13;
  }
  fail("unknown pixel budget {}", static_cast<int>(budget));
}

// One aspect-ratio template: a ladder, possibly transposed (wide images use the tall ladder's mirror).
struct Template {
  double h_div_w;
  const Ladder* ladder;
  bool transposed;
};

std::vector<Template> templates() {
  std::vector<Template> out;
  for (const Ladder& l : kTallLadders) {
    const ScaleGrid& last = l.grids[12];
    double r = static_cast<double>(last.h) / last.w;
    out.push_back({r, &l, false});
    if (last.h != last.w) out.push_back({1.0 / r, &l, true});
  }
  std::sort(out.begin(), out.end(), [](const Template& a, const Template& b) { return a.h_div_w < b.h_div_w; });
  return out;
}

std::string supported_ratios() {
  std::string s;
  for (const Template& t : templates()) s += fmt::format("{}{:.3f}", s.empty() ? "" : ", ", t.h_div_w);
  return s;
}

}  // namespace

std::string_view pixel_budget_name(PixelBudget budget) {
  switch (budget) {
    case PixelBudget::M0_06: return "0.06M";
    case PixelBudget::M0_25: return "0.25M";
    case PixelBudget::M0_60: return "0.60M";
    case PixelBudget::M1: return "1M";
  }
  return "?";
}

PixelBudget pixel_budget_from_name(std::string_view name) {
  for (PixelBudget b : {PixelBudget::M0_06, PixelBudget::M0_25, PixelBudget::M0_60, PixelBudget::M1})
    if (name == pixel_budget_name(b)) return b;
  if (name == "0.6M") return PixelBudget::M0_60;
  fail("unknown pixel budget '{}': supported are 0.06M, 0.25M, 0.60M, 1M", name);
}

std::vector<double> infinity_aspect_ratios() {
  std::vector<double> r;
  for (const Template& t : templates()) r.push_back(t.h_div_w);
  return r;
}

double nearest_infinity_aspect_ratio(double h_div_w) {
  SPARVAR_CHECK(std::isfinite(h_div_w) && h_div_w > 0, "aspect ratio h/w must be positive, got {}", h_div_w);
  double best = 0, best_dist = INFINITY;
  for (const Template& t : templates()) {
    double d = std::fabs(t.h_div_w - h_div_w);
    if (d < best_dist) best = t.h_div_w, best_dist = d;
  }
  return best;
}

ScaleSchedule infinity_schedule(double h_div_w, PixelBudget budget) {
  for (const Template& t : templates()) {
    if (!(std::fabs(t.h_div_w - h_div_w) <= 0.01)) continue;
    std::vector<ScaleGrid> grids;
    for (int k = 0; k < budget_scales(budget); ++k) {
      ScaleGrid g = t.ladder->grids[k];
      grids.push_back(t.transposed ? ScaleGrid{g.w, g.h} : g);
    }
    return ScaleSchedule(fmt::format("infinity-{:.3f}-{}", t.h_div_w, pixel_budget_name(budget)), std::move(grids));
  }
  fail("no Infinity schedule for aspect ratio h/w = {:.4f}: supported h/w are {} (budgets 0.06M, 0.25M, 0.60M, 1M)",
       h_div_w, supported_ratios());
}

ScaleSchedule var_schedule(int resolution) {
  std::vector<int> sides;
  if (resolution == 256) sides = {1, 2, 3, 4, 5, 6, 8, 10, 13, 16};
  else if (resolution == 512) sides = {1, 2, 3, 4, 6, 9, 13, 18, 24, 32};
  else fail("no VAR schedule for resolution {}: supported are 256 and 512", resolution);
  std::vector<ScaleGrid> grids;
  for (int s : sides) grids.push_back({s, s});
  return ScaleSchedule(fmt::format("var-{}", resolution), std::move(grids));
}

}  // namespace sparvar

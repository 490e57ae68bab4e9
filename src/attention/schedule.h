// Scale schedules: the list of token grids a next-scale model generates, coarse to fine, and the offset of
// every scale in the concatenated (row-major, scale after scale) token sequence.
//
// Infinity's schedules depend on the aspect ratio (h/w) and the pixel budget; they are a fixed table of
// 13-grid ladders for h >= w, the transposed ladders for h < w, and shorter prefixes of each ladder for the
// smaller budgets (7 grids = 0.06M, 10 = 0.25M, 12 = 0.60M, 13 = 1M pixels; one token = 16x16 pixels).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sparvar {

struct ScaleGrid {
  int h = 0;
  int w = 0;
  int64_t tokens() const { return int64_t{h} * w; }
  bool operator==(const ScaleGrid&) const = default;
};

class ScaleSchedule {
 public:
  ScaleSchedule() = default;
  // Throws Error unless grids is non-empty and every grid is at least 1x1.
  ScaleSchedule(std::string name, std::vector<ScaleGrid> grids);

  const std::string& name() const { return name_; }
  int num_scales() const { return static_cast<int>(grids_.size()); }
  const std::vector<ScaleGrid>& grids() const { return grids_; }
  const ScaleGrid& grid(int k) const;
  int64_t tokens(int k) const { return grid(k).tokens(); }
  // Tokens of scales 0..k-1, i.e. where scale k starts in the concatenated sequence; offset(K) = total.
  int64_t offset(int k) const;
  int64_t total_tokens() const { return offsets_.back(); }
  // "1x1 2x2 4x4 ..."
  std::string describe() const;

 private:
  std::string name_;
  std::vector<ScaleGrid> grids_;
  std::vector<int64_t> offsets_{0};  // num_scales + 1 entries
};

enum class PixelBudget { M0_06, M0_25, M0_60, M1 };
std::string_view pixel_budget_name(PixelBudget budget);  // "0.06M", "0.25M", "0.60M", "1M"
// Accepts the names above (also "0.6M"); throws Error listing them otherwise.
PixelBudget pixel_budget_from_name(std::string_view name);

// Infinity's aspect-ratio templates (h/w), ascending: 0.333 ... 1.0 ... 3.0 (15 of them).
std::vector<double> infinity_aspect_ratios();
// The template nearest to h_div_w (what Infinity does with an arbitrary image shape).
double nearest_infinity_aspect_ratio(double h_div_w);
// The schedule of one template: h_div_w must be within 0.01 of a template, else Error listing them all.
ScaleSchedule infinity_schedule(double h_div_w, PixelBudget budget);

// VAR's class-conditional schedules: resolution 256 (1,2,3,4,5,6,8,10,13,16) or 512
// (1,2,3,4,6,9,13,18,24,32), square grids. Anything else throws Error.
ScaleSchedule var_schedule(int resolution);

}  // namespace sparvar

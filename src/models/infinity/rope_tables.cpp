#include "models/infinity/rope_tables.h"

#include <cmath>

#include "core/error.h"

namespace sparvar::infinity {

ScaleGrid rope_reference_grid(const ScaleSchedule& schedule) {
  // The template whose table covers this schedule: any budget of any aspect ratio with the same grids
  // (the official dict keeps the last writer; no two templates share a schedule, so order is moot).
  for (double ratio : infinity_aspect_ratios())
    for (PixelBudget budget : {PixelBudget::M0_06, PixelBudget::M0_25, PixelBudget::M0_60, PixelBudget::M1})
      if (infinity_schedule(ratio, budget).grids() == schedule.grids())
        return infinity_schedule(ratio, PixelBudget::M1).grids().back();
  return schedule.grids().back();
}

RopeTables build_rope_tables(const ScaleSchedule& schedule, int head_dim) {
  SPARVAR_CHECK(head_dim > 0 && head_dim % 4 == 0, "RoPE: head dim {} must be a positive multiple of 4", head_dim);
  const int half = head_dim / 2;      // rows use pairs [0, half/2), columns [half/2, half)
  const int freqs = half / 2;
  std::vector<float> inv_freq(static_cast<size_t>(freqs));
  for (int j = 0; j < freqs; ++j)     // float32 like torch: 1 / 10000^(2j / half)
    inv_freq[static_cast<size_t>(j)] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * j) / static_cast<float>(half));

  const ScaleGrid ref = rope_reference_grid(schedule);
  const int64_t L = schedule.total_tokens();
  RopeTables t{Tensor::empty({L, half}, DType::F32), Tensor::empty({L, half}, DType::F32)};
  float* pc = t.cos.data_as<float>();
  float* ps = t.sin.data_as<float>();
  int64_t n = 0;
  for (const ScaleGrid& g : schedule.grids()) {
    const float row_step = static_cast<float>(static_cast<double>(ref.h) / g.h);
    const float col_step = static_cast<float>(static_cast<double>(ref.w) / g.w);
    for (int r = 0; r < g.h; ++r)
      for (int c = 0; c < g.w; ++c, ++n) {
        const float pos[2] = {std::nearbyint(static_cast<float>(r) * row_step),
                              std::nearbyint(static_cast<float>(c) * col_step)};
        for (int i = 0; i < half; ++i) {
          const float angle = pos[i / freqs] * inv_freq[static_cast<size_t>(i % freqs)];
          pc[n * half + i] = std::cos(angle);
          ps[n * half + i] = std::sin(angle);
        }
      }
  }
  return t;
}

}  // namespace sparvar::infinity

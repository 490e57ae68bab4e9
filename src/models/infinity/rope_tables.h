// Infinity's 2-D RoPE tables (rope2d_normalized_by_hw = 2), as python/sparvar_ref/rope.py builds them:
// head_dim split in halves (rows, then columns), adjacent-pair rotation, base 10000, and each scale's token
// positions normalised to the last grid of its template's 1M schedule: (r, c) of an h x w scale sits at
// (round_half_even(r * uph/h), round_half_even(c * upw/w)). A schedule that is no template's prefix is
// normalised to its own last grid.
#pragma once

#include <vector>

#include "attention/schedule.h"
#include "core/tensor.h"

namespace sparvar::infinity {

struct RopeTables {
  Tensor cos;  // host F32 [total_tokens, head_dim / 2], scales concatenated
  Tensor sin;
};

// The (uph, upw) grid positions are normalised to.
ScaleGrid rope_reference_grid(const ScaleSchedule& schedule);
RopeTables build_rope_tables(const ScaleSchedule& schedule, int head_dim);

}  // namespace sparvar::infinity

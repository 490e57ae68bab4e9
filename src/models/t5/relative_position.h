// T5's relative position bias: each (query i, key j) pair gets a learned per-head scalar chosen by the bucket
// of j - i. Encoder buckets are bidirectional: half of them for each sign; within a half, distances below
// max_exact = buckets / 4 get their own bucket, larger ones share logarithmically spaced buckets up to
// max_distance (everything beyond lands in the last one).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace sparvar::t5 {

// Bucket of rel = key_pos - query_pos, with the float32 arithmetic transformers uses (so boundary distances
// land in the same bucket as in PyTorch).
int64_t relative_bucket(int64_t rel, int num_buckets, int max_distance);

// table: host [num_buckets, H] (the relative_attention_bias embedding, any float dtype).
// Returns host F32 [H, L, L] with bias[h, i, j] = table[bucket(j - i), h].
Tensor position_bias(const Tensor& table, int64_t length, int max_distance);

}  // namespace sparvar::t5

// T5 self-attention with its additive relative-position bias, built from backend ops because the backend's
// attention op takes no additive bias: per (batch, head) a GEMM for q.k^T, one broadcast add of the bias,
// one add of the key-padding mask per padded row, one softmax, and a GEMM with v^T for P.V.
// No 1/sqrt(d) scaling: T5 folds it into the weights.
#pragma once

#include <vector>

#include "backend/backend.h"

namespace sparvar::t5 {

// q, k, v [B, H, L, dk] on the backend; bias [H, L, L] on the backend; key_mask [B, L] (0 for valid keys, a
// large negative number for padding) on the backend or undefined when no row is padded.
// Returns the context [B, H, L, dk].
Tensor biased_attention(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                        const Tensor& key_mask);

}  // namespace sparvar::t5

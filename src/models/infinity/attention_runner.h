// The seam where SparVAR's sparse attention plugs in: the model hands every self-attention call to an
// AttentionRunner, with the layer, the scale and the schedule, and the runner decides how to attend.
// DenseAttentionRunner uses the backend's dense attention (the baseline and the parity reference).
#pragma once

#include "attention/schedule.h"
#include "backend/backend.h"

namespace sparvar::infinity {

struct SelfAttentionCall {
  int layer = 0;
  int scale = 0;
  const ScaleSchedule* schedule = nullptr;
  int64_t kv_tokens = 0;  // keys [0, kv_tokens) of the cache are valid (scales 0..scale)
};

class AttentionRunner {
 public:
  virtual ~AttentionRunner() = default;
  // q [B, H, Nq, D] (normalised, scaled, rotated); k, v [B, H, capacity, D] (the KV cache); out [B, H, Nq, D].
  // The softmax scale is 1 (q carries Infinity's learned temperature).
  virtual void self_attention(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                              const SelfAttentionCall& call, Tensor& out) = 0;
};

class DenseAttentionRunner final : public AttentionRunner {
 public:
  void self_attention(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                      const SelfAttentionCall& call, Tensor& out) override {
    AttentionParams params;
    params.softmax_scale = 1.0f;
    params.kv_lengths.assign(static_cast<size_t>(q.dim(0)), static_cast<int32_t>(call.kv_tokens));
    backend.attention(q, k, v, params, out);
  }
};

}  // namespace sparvar::infinity

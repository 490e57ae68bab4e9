// The seam where SparVAR's sparse attention plugs in: the model hands every self-attention call to an
// AttentionRunner, with the layer, the scale and the schedule, and the runner decides how to attend.
// DenseAttentionRunner uses the backend's dense attention (the baseline and the parity reference).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "attention/schedule.h"
#include "backend/backend.h"

namespace sparvar::infinity {

struct SelfAttentionCall {
  int layer = 0;
  int scale = 0;
  const ScaleSchedule* schedule = nullptr;
  int64_t kv_tokens = 0;  // keys [0, kv_tokens) of the cache are valid (scales 0..scale)
  bool runner_order = false;  // q and the cache are in the runner's cache_order() (its rows of this scale)
};

// A runner's own row order for q and the KV cache (AttentionRunner::cache_order). The model writes scale k with
// Backend::qkv_to_attention's row maps: q [B, H, q_rows, D] from q_src (undefined: row-major, q_rows = tokens),
// cache rows [first_row, first_row + kv_src rows) from kv_src. Every cache row is written by exactly one scale,
// padding rows with zeros.
struct ScaleRows {
  Tensor q_src, kv_src;  // I32 on the runner's backend
  int64_t first_row = 0, q_rows = 0;
};
struct CacheOrder {
  int64_t capacity = 0;    // cache rows per (batch, head)
  int64_t max_q_rows = 0;  // the largest q_rows
  std::vector<ScaleRows> scales;
};

class AttentionRunner {
 public:
  AttentionRunner() : id_(next_id()) {}
  virtual ~AttentionRunner() = default;
  AttentionRunner(const AttentionRunner&) = delete;
  AttentionRunner& operator=(const AttentionRunner&) = delete;

  // q [B, H, Nq, D] (normalised, scaled, rotated); k, v [B, H, capacity, D] (the KV cache); out [B, Nq, H, D]
  // (token-major: the output projection reads it as [B, Nq, H * D] without a head merge). The softmax scale is 1
  // (q carries Infinity's learned temperature).
  virtual void self_attention(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                              const SelfAttentionCall& call, Tensor& out) = 0;
  // Whether this runner's calls at `scale` may be recorded (Backend::record) and replayed for later images:
  // they only queue device work on the backend's stream, into buffers that stay put, and need no host
  // decision at that scale. False makes the generator run the scale eagerly every time.
  virtual bool capturable(int scale) const {
    (void)scale;
    return true;
  }
  // The row order this runner wants q and the KV cache in for a model of `dtype`, or null (row-major: q row n =
  // token n, cache row = offset + n). The object lives as long as the runner.
  virtual const CacheOrder* cache_order(DType dtype) const {
    (void)dtype;
    return nullptr;
  }
  // Called once an image's work has finished (after the generator's last synchronisation): drop host copies
  // of per-image state, report errors the device found.
  virtual void end_image() {}

  // Unique per runner object for the life of the process (never reused, unlike an address): the generator keys
  // its cached per-image state and recordings by it.
  uint64_t id() const { return id_; }

 private:
  static uint64_t next_id() {
    static std::atomic<uint64_t> counter{0};
    return ++counter;
  }
  uint64_t id_;
};

// The self-attention call through the backend's dense attention (every runner's dense scales).
inline void dense_self_attention(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                                 const SelfAttentionCall& call, Tensor& out) {
  AttentionParams params;
  params.softmax_scale = 1.0f;
  params.kv_lengths.assign(static_cast<size_t>(q.dim(0)), static_cast<int32_t>(call.kv_tokens));
  params.out_tokens_major = true;
  backend.attention(q, k, v, params, out);
}

class DenseAttentionRunner final : public AttentionRunner {
 public:
  void self_attention(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                      const SelfAttentionCall& call, Tensor& out) override {
    dense_self_attention(backend, q, k, v, call, out);
  }
};

}  // namespace sparvar::infinity

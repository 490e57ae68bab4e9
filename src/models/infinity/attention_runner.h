// The seam where SparVAR's sparse attention plugs in: the model hands every self-attention call to an
// AttentionRunner, with the layer, the scale and the schedule, and the runner decides how to attend.
// DenseAttentionRunner uses the backend's dense attention (the baseline and the parity reference).
#pragma once

#include <atomic>
#include <cstdint>

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

// The CPU reference backend: fp32 only, every op of backend.h. GEMMs (linear, conv2d, attention) go to
// OpenBLAS, which threads itself; every other loop runs on this backend's thread pool. One .cpp per group of
// ops (gemm, elementwise, norm, rope, qkv, sampling, attention, conv2d, resample, permute; the channels-last image
// ops conv2d_nhwc, group_norm_nhwc, upsample_nhwc).
//
// Storage policy: the CPU backend holds F32 tensors, and U8 for sampled bits. empty() and upload() refuse any
// other dtype (a bf16 upload on the CPU would only lose precision for nothing); upload() accepts host tensors
// of any numeric dtype and converts them. download() returns an F32 host copy, download_raw() a copy as it is.
// qkv_to_attention's I32 row maps are plain host tensors (Tensor::empty); image_to_rgb8 also takes BF16 / F16 host
// images (the decoder's output downloaded from another backend, tests of the CUDA path's inputs).
#pragma once

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace sparvar::cpu {

class CpuBackend final : public Backend {
 public:
  // poison_allocations: empty() fills every new buffer with NaN (see make_cpu_backend).
  explicit CpuBackend(int threads, bool poison_allocations = false);

  Device device() const override { return Device::CPU; }
  std::string name() const override;

  Tensor empty(const Shape& shape, DType dtype) override;
  Tensor upload(const Tensor& host, DType dtype) override;
  Tensor download(const Tensor& t) override;
  Tensor download_raw(const Tensor& t) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void synchronize() override {}
  void copy_slice(const Tensor& src, Tensor& dst, int dim, int64_t offset) override;
  void write(const Tensor& host, Tensor& dst) override;
  std::unique_ptr<TimingEvent> record_event() override;

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, Tensor& y) override;

  void activation(const Tensor& x, Activation act, Tensor& y) override;
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  void mul(const Tensor& a, const Tensor& b, Tensor& y) override;
  void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) override;
  void rms_norm(const Tensor& x, const Tensor* w, float eps, Tensor& y) override;
  void adaln_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& y) override;
  void softmax(const Tensor& x, Tensor& y) override;
  void l2_normalize(const Tensor& x, float eps, const Tensor* head_scale, Tensor& y) override;
  void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor& y) override;
  void permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) override;

  void layer_norm_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& y) override;
  void gated_residual(Tensor& x, const Tensor& gate, const Tensor& y) override;
  void qkv_to_attention(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin, float eps,
                        int64_t offset, Tensor& q, Tensor& k_cache, Tensor& v_cache,
                        const QkvRowMap* rows = nullptr) override;

  void sample_bits(const Tensor& raw, const BitSampling& params, const Tensor* uniforms, Tensor* bits,
                   Tensor* logits) override;
  void bits_to_codes(const Tensor& bits, int patch, float zero, float one, Tensor& codes) override;

  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& params,
                 Tensor& out) override;

  void conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, int stride, int pad, Tensor& y) override;
  void group_norm(const Tensor& x, int groups, const Tensor* w, const Tensor* b, float eps, Tensor& y) override;
  void resample(const Tensor& x, ResampleMode mode, Tensor& y) override;

  // Channels-last images (conv2d_nhwc.cpp, group_norm_nhwc.cpp, upsample_nhwc.cpp).
  void conv2d_nhwc(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual, int stride, int pad,
                   Tensor& y) override;
  void group_norm_nhwc(const Tensor& x, int groups, const Tensor* w, const Tensor* b, float eps, Activation act,
                       Tensor& y) override;
  void upsample_nearest_nhwc(const Tensor& x, Tensor& y) override;

  void image_to_rgb8(const Tensor& image, ImageLayout layout, Tensor& rgb) override;  // image_rgb8.cpp

  ThreadPool& pool() { return pool_; }

 private:
  ThreadPool pool_;
  bool poison_allocations_;
};

// Scalar activations shared by linear's epilogue and activation(); GeluTanh is
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (torch's approximate="tanh"), Silu is x / (1 + exp(-x)).
void apply_activation(float* data, int64_t n, Activation act);

}  // namespace sparvar::cpu

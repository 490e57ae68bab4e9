// The CUDA backend: every op of backend.h for F32 and BF16 tensors (fp32 accumulation) on one device and one
// stream. GEMMs go to cuBLASLt (gemm_cublaslt.cu), everything else to our kernels, one .cu per group of ops.
// All work is queued on the backend's stream; download() and synchronize() wait for it. Tensors come from a
// stream-ordered pool on that stream (device_stream.h): use them on this backend only, or synchronize() first.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "backend/backend.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/device_stream.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/gemm_skinny.h"

namespace sparvar::cuda {

class CudnnRunner;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  Device device() const override { return Device::CUDA; }
  std::string name() const override;

  Tensor empty(const Shape& shape, DType dtype) override;
  Tensor upload(const Tensor& host, DType dtype) override;
  Tensor download(const Tensor& t) override;
  Tensor download_raw(const Tensor& t) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void synchronize() override;
  void copy_slice(const Tensor& src, Tensor& dst, int dim, int64_t offset) override;
  void write(const Tensor& host, Tensor& dst) override;
  std::unique_ptr<TimingEvent> record_event() override;
  // Stream capture into a CUDA graph (graph.cpp).
  std::unique_ptr<RecordedWork> record(const std::function<void()>& body) override;

  // BF16 with few rows (M <= SPARVAR_SKINNY_GEMM_ROWS): the skinny GEMM kernel (gemm_skinny.h); otherwise, or when
  // it declines (alignment, K % 8), cuBLASLt (gemm_cublaslt.cpp).
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, Tensor& y) override;
  // Ungated: the skinny GEMM like linear, else one cuBLASLt product accumulating into y (gemm_cublaslt.cpp); the
  // default composition where cuBLASLt has no algorithm for it or SPARVAR_FUSED_RESIDUAL=0.
  void linear_residual(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* gate, Tensor& y,
                       Tensor& scratch) override;

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
  // One pass over x (norm.cpp): the residual, stored, and the norm of the stored row.
  void gated_residual_norm(Tensor& x, const Tensor& gate, const Tensor& y, const LayerNormSpec& norm, float eps,
                           Tensor& h) override;
  void qkv_to_attention(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin, float eps,
                        int64_t offset, Tensor& q, Tensor& k_cache, Tensor& v_cache,
                        const QkvRowMap* rows = nullptr) override;

  // cuBLASLt: batched products over the heads, the scores in fp32, our per-head softmax (cross_attention_fold.cpp).
  void fold_cross_attention(const Tensor& k, const Tensor& v, const std::vector<int32_t>& lengths, const Tensor& wq,
                            const Tensor& bq, const Tensor& wp, FoldedText& folded) override;
  void folded_cross_attention(const Tensor& h, const FoldedText& folded, float scale, const Tensor* bias, Tensor& x,
                              Tensor& scores, Tensor& probs, Tensor& scratch) override;

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

  cudaStream_t stream() const { return stream_; }
  // How tensors are allocated (SPARVAR_CUDA_ALLOC, read when the backend is made).
  AllocMode alloc_mode() const { return device_stream_->mode(); }

 private:
  void make_current() const;
  // conv2d_nhwc without cuDNN (validated arguments): im2col + cuBLASLt through linear(), then the residual.
  void conv2d_nhwc_gemm(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual, int stride,
                        int pad, Tensor& y);

  int device_;
  cudaDeviceProp props_{};
  // The stream and tensor allocator, shared with every tensor allocated here (so first made, last gone).
  std::shared_ptr<DeviceStream> device_stream_;
  cudaStream_t stream_ = nullptr;  // device_stream_'s
  std::unique_ptr<GemmRunner> gemm_;
  std::unique_ptr<SkinnyGemm> skinny_;  // few-row bf16 products; max_rows 0 when SPARVAR_SKINNY_GEMM=0
  DeviceBuffer conv_columns_;  // im2col scratch (conv2d, conv2d_nhwc), grown on demand and kept
  DeviceBuffer norm_scratch_;  // group_norm_nhwc's partial statistics and per-channel table, grown on demand
  // Dense attention whose keys fit one 64-key tile on its own kernel (attention_short.cu); SPARVAR_SHORT_ATTENTION=0,
  // read when the backend is made, sends it to the flash kernel instead (A/B comparisons, tests of both).
  bool short_key_attention_ = true;
  // cuDNN for conv2d and attention (cudnn_runner.h): handle, graph caches, workspace; made on first use. A
  // shared_ptr, so that neither this header nor the destructor needs the type.
  std::shared_ptr<CudnnRunner> cudnn_;
};

}  // namespace sparvar::cuda

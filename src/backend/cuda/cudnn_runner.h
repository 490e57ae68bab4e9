// conv2d (NCHW and channels-last) and dense attention on cuDNN through its C++ frontend (graph API), with graphs
// built once per problem signature and cached. One CudnnRunner per CudaBackend (made on the first conv2d / attention
// call): one cuDNN handle bound to the backend's stream, the graph caches, one workspace grown on demand. The
// frontend headers stay inside cudnn_runner.cpp; this header is plain C++ (host code, like the other .cpp-side
// headers).
//
// The runner answers "not mine" (returns false) for problems cuDNN refuses, and remembers the refusal, so the
// caller runs its own kernels for them (conv2d, conv2d_nhwc: im2col + cuBLASLt; attention: attention_dense.cu). A
// failure while running an accepted graph is a sparvar::Error naming the op and the shapes.
//
// Environment (read when the runner is made):
//   SPARVAR_CONV=cudnn (default) | cudnn-fused | im2col
//       cudnn: the convolution on cuDNN, bias added by our channel-bias pass (what torch does);
//       cudnn-fused: conv + bias as one cuDNN graph (another engine) when cuDNN takes it, else as cudnn;
//       im2col: our im2col + cuBLASLt path for every conv2d and conv2d_nhwc (for comparison).
//   SPARVAR_CONV_NHWC_FUSE=all (default) | bias | none   conv2d_nhwc's epilogue: all: bias and residual added inside
//       the cuDNN graph; bias: only the bias in the graph, the residual by our epilogue pass; none: the convolution
//       alone in cuDNN, bias and residual by our one epilogue pass. A graph cuDNN refuses falls back down this list.
//   SPARVAR_ATTENTION=cudnn (default) | ours    ours: our kernels for every dense attention (for comparison).
//   SPARVAR_CUDNN_AUTOTUNE=1   conv2d: build every heuristic candidate of a new shape and keep the fastest on its
//       first run (like torch.backends.cudnn.benchmark); default: cuDNN's heuristic first choice.
//   SPARVAR_CUDNN_LOG=1        log every graph built or refused (plan, workspace, build time, what was fused) at
//       info level (otherwise at debug level, which `sparvar -v` shows).
//   SPARVAR_SDPA_SANITIZE=0    diagnostic: skip the zero-padded copy of K/V for batches with unequal kv_lengths
//       (see attention() below), to check whether cuDNN itself leaves the masked rows unread.
//   SPARVAR_SDPA_KERNEL_CACHE=1  experimental: SDPA graphs with dynamic shapes on cuDNN's composite implementation,
//       sharing one kernel cache per (padding mask, head dim), so that new shapes reuse compiled kernels instead of
//       compiling their own (cuDNN's Hopper SDPA engines are runtime-compiled; see cudnn_runner.cpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backend/cuda/device_buffer.h"
#include "core/dtype.h"

namespace sparvar::cuda {

// NCHW: x [n, cin, h, w] (contiguous), w [cout, cin, kh, kw], bias [cout] or none, y [n, cout, ho, wo].
// channels_last: x [n, h, w, cin], w [cout, kh, kw, cin] (KRSC), bias [cout] or none, residual and y
// [n, ho, wo, cout].
struct CudnnConvProblem {
  DType dtype = DType::BF16;  // F32 or BF16, every tensor
  int64_t n = 0, cin = 0, h = 0, w = 0, cout = 0, kh = 0, kw = 0, ho = 0, wo = 0;
  int stride = 1, pad = 0;
  bool bias = false;
  bool residual = false;       // channels_last only
  bool channels_last = false;

  double flops() const {
    return 2.0 * static_cast<double>(n * ho * wo * cout) * static_cast<double>(kh * kw * cin);
  }
};

// q, out [b, heads, nq, d]; k, v [b, heads, nk, d] (contiguous, BF16); kv_lengths: b entries in [1, nk], or empty.
struct CudnnAttentionProblem {
  int64_t b = 0, heads = 0, nq = 0, nk = 0, d = 0;
  float scale = 1.0f;
  std::vector<int32_t> kv_lengths;
  bool q_tokens_major = false, out_tokens_major = false;  // [b, nq, heads, d] (AttentionParams)
};

class CudnnRunner {
 public:
  enum class ConvMode { Cudnn, CudnnFused, Im2col };
  // What conv2d_nhwc asks cuDNN to add inside its graph (SPARVAR_CONV_NHWC_FUSE).
  enum class NhwcFuse { All, Bias, None };
  // Auto (default): cuDNN for large problems only (attention_dense.cpp says why); Cudnn: whenever it can.
  enum class AttentionMode { Auto, Cudnn, Ours };

  CudnnRunner(int device, cudaStream_t stream);
  ~CudnnRunner();
  CudnnRunner(const CudnnRunner&) = delete;
  CudnnRunner& operator=(const CudnnRunner&) = delete;

  ConvMode conv_mode() const { return conv_mode_; }
  // SPARVAR_CONV=cudnn / cudnn-fused given: every conv cuDNN takes (by default only large ones, conv2d.cpp).
  bool conv_forced() const { return conv_forced_; }
  // Whether conv2d / conv2d_nhwc should offer `p` to cuDNN: from 16 GFLOP (the 1024x1024 decoders' big convs,
  // 19-309 GFLOP each: ~2.6x faster than im2col there), or every conv when forced. Below, loading cuDNN and
  // building plans cost more than they save: the shipped model's decoder (one 11 GFLOP conv) took 66-101 ms cold
  // without cuDNN, 156-214 ms with it.
  bool wants_conv(const CudnnConvProblem& p) const { return conv_forced_ || p.flops() >= 16e9; }
  AttentionMode attention_mode() const { return attention_mode_; }

  // y = conv(x, w) (+ bias). True when cuDNN ran it; false when cuDNN refuses the problem (or SPARVAR_CONV=im2col):
  // nothing was queued, the caller runs its own path.
  bool conv2d(const CudnnConvProblem& p, const void* x, const void* w, const void* bias, void* y);

  // Channels-last: y = conv(x, w) (+ bias) (+ residual). Graphs are tried most fused first (bias and residual as
  // pointwise adds after the convolution, then bias only, then the convolution alone, as SPARVAR_CONV_NHWC_FUSE
  // allows); what the graph that ran did not add, our epilogue pass adds. True when cuDNN ran the convolution;
  // false when it refuses even the plain NHWC graph (or SPARVAR_CONV=im2col): nothing was queued.
  bool conv2d_nhwc(const CudnnConvProblem& p, const void* x, const void* w, const void* bias, const void* residual,
                   void* y);

  // out = softmax(scale q k^T, keys past kv_lengths[b] masked) v. True when cuDNN ran it; false when it refuses.
  // Keys past a batch item's kv length are never read (they may hold NaN):
  //  - no kv_lengths, or all equal (L): K and V are described to cuDNN as [b, heads, L, d] with the strides of
  //    [b, heads, nk, d], so the rows past L lie outside the tensors cuDNN sees (a KV cache is read in place);
  //  - unequal lengths (cross-attention to padded text): cuDNN's padding mask with seq_len_kv = kv_lengths over
  //    max(kv_lengths) keys. cuDNN documents that masked rows of a ragged layout still enter P V (so must be
  //    finite), so K and V are first copied (max_len rows, small: text keys) into a scratch with the rows past
  //    each length zeroed; SPARVAR_SDPA_SANITIZE=0 reads them in place instead.
  bool attention(const CudnnAttentionProblem& p, const void* q, const void* k, const void* v, void* out);

  struct Graph;  // a built cuDNN graph (cudnn_runner.cpp)

 private:
  void ensure_handle();
  void* workspace(int64_t bytes);
  void log(const std::string& message) const;
  // Executes a built graph on the stream (autotuning it first when asked); a failure throws naming op and problem.
  void run(Graph& entry, std::unordered_map<int64_t, void*>& pack, const char* op);

  using ConvKey = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, bool,
                             bool, bool, uint32_t>;
  using AttentionKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, uint32_t, bool, bool>;

  // fallback: what runs instead when cuDNN refuses this graph (for the log).
  Graph* conv_graph(const CudnnConvProblem& p, bool fuse_bias, bool fuse_residual, uint32_t alignment,
                    const char* fallback);
  // keys: the key rows cuDNN sees; row_stride: rows between consecutive heads of K/V in memory.
  Graph* attention_graph(const CudnnAttentionProblem& p, int64_t keys, int64_t row_stride, bool mask);

  int device_;
  cudaStream_t stream_;
  void* handle_ = nullptr;  // cudnnHandle_t
  ConvMode conv_mode_ = ConvMode::Cudnn;
  NhwcFuse nhwc_fuse_ = NhwcFuse::All;
  bool conv_forced_ = false;
  AttentionMode attention_mode_ = AttentionMode::Auto;
  bool autotune_ = false;
  bool sanitize_ = true;
  bool sdpa_kernel_cache_ = false;
  bool log_info_ = false;
  DeviceBuffer workspace_;     // shared by every graph (one stream: one execution at a time)
  DeviceBuffer kv_scratch_;    // zero-padded K and V for unequal kv_lengths
  DeviceBuffer seq_lengths_;   // int32 [2 * kMaxKvBatch]: seq_len_q, then seq_len_kv
  std::map<ConvKey, std::unique_ptr<Graph>> conv_graphs_;
  std::map<AttentionKey, std::unique_ptr<Graph>> attention_graphs_;
  std::map<std::pair<bool, int64_t>, std::shared_ptr<void>> kernel_caches_;  // fe::KernelCache per (mask, head dim)
};

// The backend's runner, made on first use (cuda_backend.h holds it as a shared_ptr so that it needs no definition).
CudnnRunner& cudnn_runner(std::shared_ptr<CudnnRunner>& slot, int device, cudaStream_t stream);

}  // namespace sparvar::cuda

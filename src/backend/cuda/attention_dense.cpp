// Entry point of dense attention: validation of shapes, mask and kv_lengths (the CPU backend's rules), then cuDNN's
// SDPA (cudnn_runner.h) for BF16 without a ScaleMask, or the kernels of attention_dense.cu for the rest (F32, the
// ScaleMask, head dims cuDNN refuses) and with SPARVAR_ATTENTION=ours. Among ours, bf16 problems whose visible
// keys all fit one 64-key tile (cross-attention to a short text) take the short-key kernel (attention_short.cu:
// built to stream Q and O at memory speed); SPARVAR_SHORT_ATTENTION=0, read when the backend is made, keeps them on
// the flash kernel for A/B runs.
#include <algorithm>

#include "backend/cuda/attention_kernel.h"
#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cudnn_runner.h"

namespace sparvar::cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;

// Validates the mask against the shapes (the CPU backend's rules) and packs it for the kernels.
AttentionVisibility make_visibility(const AttentionParams& params, int64_t B, int64_t Nq, int64_t Nk) {
  constexpr const char* op = "attention";
  const ScaleMask& mask = params.mask;
  AttentionVisibility vis;
  vis.nk = Nk;
  SPARVAR_CHECK(mask.q_ends.size() == mask.k_ends.size(), "{}: mask has {} q_ends but {} k_ends", op,
                mask.q_ends.size(), mask.k_ends.size());
  SPARVAR_CHECK(mask.q_ends.size() <= kMaxMaskScales, "{}: mask has {} scales, at most {} are supported", op,
                mask.q_ends.size(), kMaxMaskScales);
  if (!mask.empty()) {
    int64_t q_begin = 0;
    for (size_t s = 0; s < mask.q_ends.size(); ++s) {
      const int64_t q_end = mask.q_ends[s], k_end = mask.k_ends[s];
      SPARVAR_CHECK(q_end >= q_begin && q_end <= Nq,
                    "{}: mask q_ends[{}] = {} must be non-decreasing and within Nq = {}", op, s, q_end, Nq);
      SPARVAR_CHECK(k_end >= 0 && k_end <= Nk, "{}: mask k_ends[{}] = {} is outside [0, Nk = {}]", op, s, k_end, Nk);
      SPARVAR_CHECK(q_end == q_begin || k_end > 0, "{}: query rows [{}, {}) of mask scale {} see no key", op, q_begin,
                    q_end, s);
      vis.q_ends[s] = q_end;
      vis.k_ends[s] = k_end;
      q_begin = q_end;
    }
    SPARVAR_CHECK(q_begin == Nq, "{}: mask q_ends ends at {} but there are Nq = {} query rows", op, q_begin, Nq);
    vis.num_scales = static_cast<int>(mask.q_ends.size());
  }
  if (!params.kv_lengths.empty()) {
    SPARVAR_CHECK(static_cast<int64_t>(params.kv_lengths.size()) == B, "{}: kv_lengths has {} entries for batch size {}",
                  op, params.kv_lengths.size(), B);
    SPARVAR_CHECK(B <= kMaxKvBatch, "{}: kv_lengths supports batches up to {}, got {}", op, kMaxKvBatch, B);
    for (size_t b = 0; b < params.kv_lengths.size(); ++b) {
      SPARVAR_CHECK(params.kv_lengths[b] >= 1 && params.kv_lengths[b] <= Nk,
                    "{}: kv_lengths[{}] = {} is outside [1, Nk = {}]", op, b, params.kv_lengths[b], Nk);
      vis.kv_lengths[b] = params.kv_lengths[b];
    }
    vis.has_kv_lengths = 1;
  }
  return vis;
}

}  // namespace

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& params,
                            Tensor& out) {
  constexpr const char* op = "attention";
  check_compute(q, op, "q");
  SPARVAR_CHECK(q.ndim() == 4, "{}: q must be {}, got {}", op, params.q_tokens_major ? "[B, Nq, H, D]" : "[B, H, Nq, D]",
                shape_string(q.shape()));
  const int64_t B = q.dim(0), H = q.dim(params.q_tokens_major ? 2 : 1), Nq = q.dim(params.q_tokens_major ? 1 : 2),
                D = q.dim(3);
  check_compute_like(k, q, op, "k");
  SPARVAR_CHECK(k.ndim() == 4 && k.dim(0) == B && k.dim(1) == H && k.dim(3) == D,
                "{}: k {} does not match q {} (expected [{},{},Nk,{}])", op, shape_string(k.shape()),
                shape_string(q.shape()), B, H, D);
  const int64_t Nk = k.dim(2);
  check_shaped_like(v, q, k.shape(), op, "v");
  check_output(out, q, params.out_tokens_major ? Shape{B, Nq, H, D} : Shape{B, H, Nq, D}, op);
  check_disjoint(q, out, op, "q");
  check_disjoint(k, out, op, "k");
  check_disjoint(v, out, op, "v");
  SPARVAR_CHECK(Nq == 0 || Nk > 0, "{}: q {} has query rows but k {} has no keys", op, shape_string(q.shape()),
                shape_string(k.shape()));
  SPARVAR_CHECK(Nk <= 0x7fffffff, "{}: Nk = {} is too large", op, Nk);
  SPARVAR_CHECK(D <= kMaxHeadDim, "{}: head dim {} is not supported (at most {}; bf16 fast path: 64 or 128)", op,
                D, kMaxHeadDim);
  const AttentionVisibility vis = make_visibility(params, B, Nq, Nk);
  if (out.numel() == 0) return;
  make_current();

  // cuDNN pays ~60 ms to build each new shape's plan (once: the scales are replayed as CUDA graphs after) and
  // some host time per eager call; on tiny problems its kernels are also slower than ours. By default
  // (SPARVAR_ATTENTION=auto) it runs where its kernels win: more than one key tile (64 keys) and at least 2^22
  // query x key pairs over all batch rows and heads. Measured on the H100, Infinity-8B CSLA with graphs: sending
  // every problem to cuDNN made 16x16..24x24 0.8-3 ms per scale faster than our kernel (which the former 2^26
  // bound kept there) and 2x2..4x4 ~0.3 ms slower; cross-attention to a short text (<= 64 keys) gained nothing.
  // SPARVAR_ATTENTION=cudnn sends it everything it takes.
  int64_t keys = Nk;
  if (!params.kv_lengths.empty())
    keys = *std::max_element(params.kv_lengths.begin(), params.kv_lengths.end());
  const bool large = keys > 64 && B * H * Nq * keys >= (int64_t{1} << 22);
  if (q.dtype() == DType::BF16 && params.mask.empty()) {
    CudnnRunner& cudnn = cudnn_runner(cudnn_, device_, stream_);
    const bool wanted = cudnn.attention_mode() == CudnnRunner::AttentionMode::Cudnn ||
                        (cudnn.attention_mode() == CudnnRunner::AttentionMode::Auto && large);
    CudnnAttentionProblem problem;
    problem.b = B;
    problem.heads = H;
    problem.nq = Nq;
    problem.nk = Nk;
    problem.d = D;
    problem.scale = params.softmax_scale;
    problem.kv_lengths = params.kv_lengths;
    problem.q_tokens_major = params.q_tokens_major;
    problem.out_tokens_major = params.out_tokens_major;
    if (wanted && cudnn.attention(problem, q.data(), k.data(), v.data(), out.data())) return;
  }
  SPARVAR_CHECK(B * H <= 65535, "{}: B * H = {} exceeds the grid limit 65535", op, B * H);

  const AttentionArgs args{q.data(), k.data(), v.data(), out.data(), H, Nq, Nk, static_cast<int>(D),
                           params.softmax_scale * kLog2e, params.q_tokens_major, params.out_tokens_major};
  launch_dense_attention(q.dtype(), args, vis, B * H, short_key_attention_, stream_);
}

}  // namespace sparvar::cuda

// The backend interface: the coarse, fusable ops the model graphs are written against.
//
// Two implementations: CPU (src/backend/cpu, fp32, the reference; OpenBLAS GEMM, plain loops) and CUDA
// (src/backend/cuda, bf16 storage with fp32 accumulation; cuBLASLt, cuDNN, our kernels). tests/backend_ops
// runs every op on both with the same random inputs and compares, like llama.cpp's test-backend-ops.
//
// Conventions for every op:
//  - all tensors are contiguous and live on the backend's device; outputs are allocated by the caller
//    (backend.empty) with the exact shape documented, and every element of an output is written;
//  - the CPU backend takes F32 tensors; the CUDA backend takes F32 or BF16 (all float inputs and the output
//    of one call share one dtype) and accumulates in fp32;
//  - shapes, dtypes and devices are validated before any work; a mismatch throws sparvar::Error naming the
//    op, the argument and both shapes;
//  - in/out aliasing (y the same tensor as x) is allowed for elementwise ops (activation, add, mul,
//    adaln_modulate, rope, l2_normalize, softmax, norms (group_norm_nhwc too), layer_norm_modulate,
//    gated_residual's and gated_residual_norm's y), not for linear, attention, conv2d, conv2d_nhwc, resample,
//    upsample_nearest_nhwc, permute, copy_slice, qkv_to_attention, sample_bits, bits_to_codes, image_to_rgb8, nor
//    for gated_residual_norm's h;
//  - integer tensors: sample_bits and bits_to_codes take U8 bits, image_to_rgb8 writes U8 (both backends store U8
//    tensors for them).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace sparvar {

enum class Activation { None, GeluTanh, Silu };
enum class ResampleMode { Nearest, Bilinear, Bicubic, Area };
// How image_to_rgb8 reads its image: [B, C, H, W] or channels last [B, H, W, C].
enum class ImageLayout { Nchw, Nhwc };

// Block mask over scales for dense attention. Query rows [q_ends[s-1], q_ends[s]) (q_ends[-1] = 0) see key
// columns [0, k_ends[s]). Empty = every query sees every key. Used for the whole-sequence (teacher-forced)
// pass, where queries of scale s see the keys of scales 0..s; a single generation step needs no mask.
struct ScaleMask {
  std::vector<int64_t> q_ends;
  std::vector<int64_t> k_ends;
  bool empty() const { return q_ends.empty(); }
};

// Infinity's bitwise sampling (models/infinity/sampler.h) as a backend op, see Backend::sample_bits.
struct BitSampling {
  float tau = 1.0f;      // logits are divided by tau ...
  float cfg = 1.0f;      // ... then, with 2B raw rows: cfg * cond + (1 - cfg) * uncond
  int top_k = 0;         // only 1 filters (the smaller logit of a bit)
  float top_p = 0.0f;    // <= 0: off
  uint64_t seed = 0;     // Philox stream (seed, stream) when no uniforms are given: element i of the bits
  uint64_t stream = 0;   // [B, N, D] (row-major) takes uniform_float(seed, stream, i) (core/philox.h)
  // When set, the seed is read from this U8 [8] tensor on the backend (little-endian) when the op runs and
  // `seed` is ignored: recorded work (Backend::record) then samples each replay with the seed written before it.
  const Tensor* seed_tensor = nullptr;
};

// A point in a backend's queue of work, for timing without synchronising: CUDA records an event on the stream;
// the CPU backend, whose ops finish before they return, takes the wall clock.
class TimingEvent {
 public:
  virtual ~TimingEvent() = default;
  // Milliseconds from `earlier` (an event of the same backend) to this one. Both must have completed: call
  // after the backend's synchronize().
  virtual double ms_since(const TimingEvent& earlier) const = 0;
};

// Work recorded once by Backend::record and performed by each replay(). On CUDA a captured and instantiated
// graph (one launch instead of one per op); elsewhere the recorded body itself, run again at every replay.
class RecordedWork {
 public:
  virtual ~RecordedWork() = default;
  // Performs the work, queued like the ops it recorded.
  virtual void replay() = 0;
  // False once a replay could touch memory the recording no longer owns (CUDA: a scratch buffer of the backend
  // or of a kernel library was reallocated since the capture); record again then. replay() refuses.
  virtual bool valid() const { return true; }
  // True for a device graph; false when replay() runs the body again (the fallback).
  virtual bool is_graph() const { return false; }
};

struct AttentionParams {
  float softmax_scale = 1.0f;            // logits = scale * q.k
  ScaleMask mask;                         // see ScaleMask
  std::vector<int32_t> kv_lengths;        // per batch item: keys [len, Nk) are masked (cross-attention to
                                          // variable-length text, the unfilled tail of a KV cache); empty =
                                          // all Nk valid. Every len >= 1.
                                          // Keys and values no query row can see (past its kv length and its
                                          // mask end) are never read: they may hold anything, NaN included.
  // Token-major q / out: [B, Nq, H, D] (what a linear layer writes and reads, viewed per head) instead of
  // [B, H, Nq, D]; saves the head split / merge permutes around the call. k and v stay [B, H, Nk, D].
  bool q_tokens_major = false;
  bool out_tokens_major = false;
};

// Where qkv_to_attention writes each token when the attention wants its own row order (the CUDA sparse runner keeps
// q and the KV cache in padded tile order, so its kernel reads them in place). Both maps are I32 tensors on the
// backend, indexed by DESTINATION row and holding the source token (0 <= token < N), or -1 for a padding row,
// which is written with zeros; so every row of a mapped range is written. An entry outside [-1, N) is an error
// (the CPU backend checks it; the CUDA kernel writes zeros there rather than read out of bounds).
//   q_src [Rq]:  q is [B, H, Rq, D]; q row r = token q_src[r] (null: Rq = N, row r = token r)
//   kv_src [Rk]: cache rows [offset, offset + Rk), row offset + r = token kv_src[r] (null: Rk = N, identity)
struct QkvRowMap {
  const Tensor* q_src = nullptr;
  const Tensor* kv_src = nullptr;
};

// The LayerNorm Backend::gated_residual_norm applies to its sum: layer_norm's affine (weight, bias [C], each
// optional) or layer_norm_modulate's AdaLN (scale, shift [B, C]). Holds views (not pointers), so a caller can pass
// tensors it made for the call.
struct LayerNormSpec {
  bool modulated = false;
  Tensor weight, bias;  // affine: [C], or undefined for none
  Tensor scale, shift;  // modulated: [B, C]

  static LayerNormSpec affine(const Tensor* weight, const Tensor* bias) {
    LayerNormSpec s;
    if (weight) s.weight = *weight;
    if (bias) s.bias = *bias;
    return s;
  }
  static LayerNormSpec modulate(const Tensor& scale, const Tensor& shift) {
    LayerNormSpec s;
    s.modulated = true;
    s.scale = scale;
    s.shift = shift;
    return s;
  }
};

// A layer's cross-attention text folded into its projections (Backend::fold_cross_attention), Lp keys per head (the
// text length rounded up; keys past a row's length are masked by kb):
//   kf [B, H * Lp, C]   the keys through the q projection
//   kb F32 [B, H * Lp]  the q projection's bias against each key, -inf where masked
//   vf [B, C, H * Lp]   the values through the output projection
struct FoldedText {
  Tensor kf, kb, vf;
  int64_t heads = 0, keys = 0;  // H, Lp
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // ---- memory -------------------------------------------------------------------------------------
  virtual Tensor empty(const Shape& shape, DType dtype) = 0;
  // A copy of a host tensor on this backend, converted to dtype.
  virtual Tensor upload(const Tensor& host, DType dtype) = 0;
  // A host copy of t, converted to F32.
  virtual Tensor download(const Tensor& t) = 0;
  // A host copy of t in its own dtype, the bytes as stored (e.g. a U8 image, a quarter of its F32 bytes).
  virtual Tensor download_raw(const Tensor& t) = 0;
  // dst = src converted (same element count, any float dtypes; both on this backend).
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void synchronize() = 0;
  // Writes src into dst at `offset` along dimension `dim`: dst[..., offset + i, ...] = src[..., i, ...]. Same
  // dtype (any) and rank; every other dimension equal; offset + src.dim(dim) <= dst.dim(dim). Only that slab of
  // dst is written, the rest keeps its contents (unlike other outputs). One strided copy, e.g. a scale's keys
  // into a KV cache [B, H, capacity, D] at a token offset.
  virtual void copy_slice(const Tensor& src, Tensor& dst, int dim, int64_t offset) = 0;
  // dst = host (a host tensor of dst's element count, any numeric dtype), converted to dst's dtype. Writes into
  // an existing tensor (no allocation); host may be reused on return. Not inside record().
  virtual void write(const Tensor& host, Tensor& dst) = 0;
  // See TimingEvent.
  virtual std::unique_ptr<TimingEvent> record_event() = 0;

  // ---- recorded work ------------------------------------------------------------------------------
  // Records the ops `body` queues, without performing them: each replay() of the result performs them (see
  // RecordedWork). CUDA: stream capture of the backend's stream (relaxed mode), so the body must only queue
  // device work on this backend's stream: no allocation that is not already reserved, no download, write,
  // upload or synchronize, no host memory read at replay; every argument (pointers, sizes, scalars) is frozen
  // into the recording, so values that change between replays must live in device memory (e.g.
  // BitSampling::seed_tensor). Host-side effects of the body happen once, here. A body that throws leaves
  // nothing recorded and the error propagates. This default (the CPU backend) keeps the body and runs it at
  // every replay.
  virtual std::unique_ptr<RecordedWork> record(const std::function<void()>& body);

  // ---- dense algebra ------------------------------------------------------------------------------
  // y[..., N] = act(x[..., K] @ w[N, K]^T + bias[N]). x's leading dims are flattened to M rows. bias may be
  // null. This is nn.Linear with the bias and activation fused as an epilogue.
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, Tensor& y) = 0;
  // Residual linear: y[b, n, :] += gate[b, :] * (x[b, n, :] @ w^T + bias), the gate optional (null = 1).
  // x [B, N, K], w [Nout, K], bias [Nout] or null, gate [B, Nout] or null, y [B, N, Nout] (read and written).
  // `scratch` [B, N, Nout] may be used (and clobbered) by a backend that cannot fuse it. The default is
  // linear into scratch, then gated_residual (or add); CUDA fuses it into the GEMM's epilogue where cuBLASLt can.
  virtual void linear_residual(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* gate, Tensor& y,
                               Tensor& scratch);

  // ---- elementwise and normalisation (all over the last dimension C unless said) --------------------
  // y = act(x), any shape.
  virtual void activation(const Tensor& x, Activation act, Tensor& y) = 0;
  // y = a + b, or a * b; b's shape equals a suffix of a's shape (broadcast over the leading dims).
  virtual void add(const Tensor& a, const Tensor& b, Tensor& y) = 0;
  virtual void mul(const Tensor& a, const Tensor& b, Tensor& y) = 0;
  // y = (x - mean) / sqrt(var + eps) * w + b; w, b of shape [C] or null (no affine).
  virtual void layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) = 0;
  // y = x / sqrt(mean(x^2) + eps) * w; w of shape [C] or null.
  virtual void rms_norm(const Tensor& x, const Tensor* w, float eps, Tensor& y) = 0;
  // AdaLN: x [B, N, C], scale and shift [B, C]: y[b,n,c] = x[b,n,c] * (1 + scale[b,c]) + shift[b,c].
  virtual void adaln_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& y) = 0;
  // Softmax over the last dimension, any shape.
  virtual void softmax(const Tensor& x, Tensor& y) = 0;
  // x [B, H, N, D]: y = x / max(||x||_2, eps) * head_scale[h]; head_scale [H] or null (= 1).
  // (Infinity normalises q and k this way; q's learned per-head factor is passed as head_scale.)
  virtual void l2_normalize(const Tensor& x, float eps, const Tensor* head_scale, Tensor& y) = 0;
  // 2-D RoPE as Infinity applies it. x [B, H, N, D]; cos, sin [N, D/2] (F32 tables built by the model for
  // the scale's grid). Pairs are interleaved: for i < D/2, (x0, x1) = (x[2i], x[2i+1]) becomes
  // (cos*x0 - sin*x1, sin*x0 + cos*x1) with cos = cos[n, i], sin = sin[n, i].
  virtual void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor& y) = 0;
  // y = x with dimensions permuted: y.shape[i] = x.shape[perm[i]]; up to 6 dims.
  virtual void permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) = 0;

  // ---- fused ops of Infinity's transformer block ---------------------------------------------------
  // Each equals a composition of the ops above in one pass (the CPU backend gives bit-identical results to
  // that composition; CUDA rounds once instead of after every step).
  // layer_norm without affine, then adaln_modulate: y = LN(x) * (1 + scale[b]) + shift[b]. x, y [B, N, C];
  // scale, shift [B, C]. y may be x.
  virtual void layer_norm_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, float eps,
                                   Tensor& y) = 0;
  // Gated residual: x[b, n, c] += gate[b, c] * y[b, n, c]. x, y [B, N, C]; gate [B, C]; x is updated in place.
  virtual void gated_residual(Tensor& x, const Tensor& gate, const Tensor& y) = 0;
  // gated_residual, then the LayerNorm `norm` of the updated x into h: h = layer_norm(x, weight, bias, eps) or
  // layer_norm_modulate(x, scale, shift, eps). x, y, h [B, N, C]; gate [B, C]. y may be x; h shares no byte with
  // x, y, gate or norm's tensors, nor x with gate or norm's tensors. The statistics are those of x as stored (after
  // its rounding). The default is that composition (gated_residual_norm.h); CUDA does it in one pass over x.
  virtual void gated_residual_norm(Tensor& x, const Tensor& gate, const Tensor& y, const LayerNormSpec& norm,
                                   float eps, Tensor& h);
  // The fused q/k/v projection's output into attention layout, straight into the KV cache. qkv [B, N, 3 * H * D]
  // (per token: the q heads, then the k heads, then the v heads); cos, sin [N, D/2] F32 (as for rope);
  // q_scale [H] or null (= 1); k_cache, v_cache [B, H, capacity, D] with offset + N <= capacity:
  //   q [B, H, N, D]                = rope(l2_normalize(q heads, eps, q_scale))
  //   k_cache[:, :, offset + n, :]  = rope(l2_normalize(k heads, eps))
  //   v_cache[:, :, offset + n, :]  = v heads
  // (l2_normalize and rope exactly as above). Cache tokens outside [offset, offset + N) keep their contents.
  // With `rows` (QkvRowMap), the destinations are permuted / padded instead (see there).
  virtual void qkv_to_attention(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin,
                                float eps, int64_t offset, Tensor& q, Tensor& k_cache, Tensor& v_cache,
                                const QkvRowMap* rows = nullptr) = 0;

  // ---- cross-attention to a short text, folded into its projections (Infinity) ----------------------------
  // softmax(q k^T) v with q = x wq^T + bq and the output projection wp: per head h, q k_j = x (wq_h^T k_j) + bq_h k_j
  // and (p v) wp_h^T = p (v wp_h^T). With the text's keys and values multiplied through the projections once per
  // image, a token needs 4 * H * Lp * C FLOPs instead of 4 * C * C + attention: 2-4x less for Lp <= D / 2.
  // fold_cross_attention: k, v [B, H, L, D] (a layer's text keys and values), lengths[b] in [1, L] (valid keys of
  // row b), wq [H * D, C] and bq [H * D] (the q projection), wp [C, H * D] (the output projection) into `folded`
  // (tensors allocated by the caller, keys = Lp >= L):
  //   kf[b, h*Lp + j, :] = sum_d k[b, h, j, d] wq[h*D + d, :]    (0 for j >= L)
  //   kb[b, h*Lp + j]    = sum_d k[b, h, j, d] bq[h*D + d]       (-inf for j >= lengths[b])
  //   vf[b, :, h*Lp + j] = sum_d wp[:, h*D + d] v[b, h, j, d]    (0 for j >= L)
  // The default computes it on the host in double precision (the reference); CUDA with cuBLASLt.
  virtual void fold_cross_attention(const Tensor& k, const Tensor& v, const std::vector<int32_t>& lengths,
                                    const Tensor& wq, const Tensor& bq, const Tensor& wp, FoldedText& folded);
  // x += P vf^T + bias with P = softmax(scale * (h kf^T + kb)) over each head's Lp columns: the cross-attention of
  // h [B, N, C] to the folded text, added to x [B, N, C]. bias [C] (wp's) or null. scores F32 and probs (x's dtype)
  // [B, N, H * Lp] and scratch [B, N, C] are the caller's scratch, overwritten. The default works on the host.
  virtual void folded_cross_attention(const Tensor& h, const FoldedText& folded, float scale, const Tensor* bias,
                                      Tensor& x, Tensor& scores, Tensor& probs, Tensor& scratch);

  // ---- sampling (Infinity's bitwise head) -----------------------------------------------------------------
  // raw [R, N, 2 * D]: the head's logits, two per bit (bit j: 2j for 0, 2j + 1 for 1); R = B, or 2B for CFG
  // (conditional rows, then the unconditional rows in the same order). Writes, each optional (not both null):
  //   logits F32 [B, N, 2 * D]: raw / tau, combined with CFG when R = 2B (see BitSampling);
  //   bits U8 [B, N, D]: 1 iff u >= p(bit = 0) (top-k / top-p as in sampler.h), u = uniforms[b, n, j]
  //     (F32 [B, N, D], when given) or the Philox stream of `params`.
  // The arithmetic is core/bit_sampling.h's on every backend: the same raw logits and uniforms give the same
  // bits on the CPU and the GPU.
  virtual void sample_bits(const Tensor& raw, const BitSampling& params, const Tensor* uniforms, Tensor* bits,
                           Tensor* logits) = 0;
  // Bits of one scale to BSQ codes on its latent grid: bits U8 [B, h * w, d * p * p] (0/1), codes F32
  // [B, d, h * p, w * p], patch p = 1 or 2 (2 = the d56 models' 2x2 patchify: channel c*4 + i*2 + j of token
  // (y, x) is latent (c, 2y + i, 2x + j)). codes = bit ? one : zero.
  virtual void bits_to_codes(const Tensor& bits, int patch, float zero, float one, Tensor& codes) = 0;

  // ---- attention ----------------------------------------------------------------------------------
  // Dense attention. q [B, H, Nq, D], k and v [B, H, Nk, D], out [B, H, Nq, D] (q and out [B, Nq, H, D] with
  // params.q_tokens_major / out_tokens_major); softmax in fp32.
  // A query row with no visible key (cannot happen with valid masks) is an error, not NaN.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& params,
                         Tensor& out) = 0;

  // ---- images (NCHW) ------------------------------------------------------------------------------
  // x [N, Cin, H, W], w [Cout, Cin, kh, kw], bias [Cout] or null; zero padding `pad` on every side, `stride`;
  // y [N, Cout, (H + 2p - kh)/s + 1, (W + 2p - kw)/s + 1].
  virtual void conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, int stride, int pad, Tensor& y) = 0;
  // x [N, C, H, W], C divisible by groups; w, b [C] or null. Statistics over (C/groups, H, W).
  virtual void group_norm(const Tensor& x, int groups, const Tensor* w, const Tensor* b, float eps, Tensor& y) = 0;
  // x [N, C, H, W] -> y [N, C, H', W'] with the semantics of torch.nn.functional.interpolate:
  // Nearest (floor(dst * in/out)), Bilinear and Bicubic (align_corners=False, cubic A = -0.75, border
  // clamped), Area (adaptive average pooling).
  virtual void resample(const Tensor& x, ResampleMode mode, Tensor& y) = 0;

  // ---- images, channels last (NHWC) ----------------------------------------------------------------
  // The BSQ-VAE decoder's layout on the GPU: cuDNN's tensor-core convolutions work on NHWC, and a group's
  // channels are contiguous within every pixel. The defaults (nhwc_by_permute.h) compose the NCHW ops above
  // through permute: correct everywhere, slow; the CPU and CUDA backends override them.
  // x [N, H, W, Cin], w [Cout, kh, kw, Cin], bias [Cout] or null, residual [N, Ho, Wo, Cout] or null; zero padding
  // `pad` on every side, `stride`; y [N, Ho, Wo, Cout] = conv(x, w) + bias + residual, Ho and Wo as for conv2d.
  // (The residual add is the decoder's skip connection, fused into the convolution's epilogue where possible.)
  virtual void conv2d_nhwc(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual, int stride,
                           int pad, Tensor& y);
  // x [N, H, W, C], C divisible by groups; w, b [C] or null. Mean and variance per (image, group) over
  // (H, W, C/groups), then y = act((x - mean) / sqrt(var + eps) * w + b). y may be x.
  virtual void group_norm_nhwc(const Tensor& x, int groups, const Tensor* w, const Tensor* b, float eps,
                               Activation act, Tensor& y);
  // Nearest-neighbour upsampling by whole factors: x [N, H, W, C] (H, W > 0) -> y [N, fy * H, fx * W, C], the
  // factors fy, fx >= 1 read from the shapes; y[n, i, j, c] = x[n, i / fy, j / fx, c].
  virtual void upsample_nearest_nhwc(const Tensor& x, Tensor& y);

  // ---- the finished image ------------------------------------------------------------------------------
  // A decoded image (values in [-1, 1] give the full range) -> 8-bit RGB, on the backend, so a quarter of F32's
  // bytes go to the host and no host pass is left: rgb[b, y, x, c] = trunc((clamp(v, -1, 1) + 1) / 2 * 255) in fp32
  // arithmetic (NaN -> 0; backend/rgb8.h), v = channel c of pixel (y, x): image [B, 3, H, W] (Nchw) or [B, H, W, C],
  // C >= 3, channels past the third ignored (Nhwc: the decoder's conv_out output, zero-padded channels). The image is
  // F32, BF16 or F16 whatever the backend computes in (the CPU backend takes host tensors of each); rgb U8
  // [B, H, W, 3], disjoint from image. Bit for bit what the BSQ-VAE decoder's host path gave (to_uint8_rgb after the
  // clamp of image_to_host) on every backend.
  virtual void image_to_rgb8(const Tensor& image, ImageLayout layout, Tensor& rgb) = 0;
};

// Backend::record's fallback: the body, run again at every replay.
class RerunBody final : public RecordedWork {
 public:
  explicit RerunBody(std::function<void()> body) : body_(std::move(body)) {}
  void replay() override { body_(); }

 private:
  std::function<void()> body_;
};

inline std::unique_ptr<RecordedWork> Backend::record(const std::function<void()>& body) {
  return std::make_unique<RerunBody>(body);
}

// threads: 0 = hardware concurrency. poison_allocations (a debugging aid for tests): every buffer empty()
// returns is filled with NaN (all bytes 0xFF), so any read of an element before it is written propagates a
// NaN into the results instead of depending silently on whatever the allocator handed back.
std::unique_ptr<Backend> make_cpu_backend(int threads = 0, bool poison_allocations = false);
// Throws Error when built without CUDA or when no CUDA device is present.
std::unique_ptr<Backend> make_cuda_backend(int device = 0);
// True when this build has CUDA and a CUDA device can be used (tests skip otherwise).
bool cuda_available();

// GPU memory the engine holds through its allocator (tensors, scratch, library workspaces it allocates), now
// and at most since the last reset; zeros without CUDA. The CUDA context itself is not counted (torch's
// max_memory_allocated is the comparable figure). pool_reserved*: what the CUDA backend's stream-ordered pool
// holds from the driver (its tensors and the freed blocks it keeps cached; torch's memory_reserved), 0 with
// SPARVAR_CUDA_ALLOC=malloc.
struct GpuMemoryStats {
  size_t current = 0, peak = 0;
  size_t pool_reserved = 0, pool_reserved_peak = 0;
};
GpuMemoryStats gpu_memory_stats();
void reset_gpu_memory_peak();

}  // namespace sparvar

// The default channels-last ops (inline: every Backend, the test doubles too, links without another library).
#include "backend/nhwc_by_permute.h"
// The default linear_residual (the same way).
#include "backend/linear_residual.h"
// The default gated_residual_norm (the same way).
#include "backend/gated_residual_norm.h"
// The default (host) cross-attention folding (the same way).
#include "backend/cross_attention_fold.h"

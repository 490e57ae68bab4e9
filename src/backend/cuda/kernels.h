// The launchers of our kernels (the .cu files), called by the op entry points (the .cpp files of the same name),
// which validate every argument first. This header and the .cu files stay free of fmt and core/tensor.h
// (nvcc's C++20 front end cannot compile fmt 9); launchers take raw pointers and sizes, pick the vector width
// from sizes and alignment, and run on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backend/rgb8.h"
#include "core/dtype.h"

namespace sparvar::cuda {

// Mirrors sparvar::Activation / ResampleMode (backend.h), converted in the .cpp files.
enum class KernelAct { None, GeluTanh, Silu };
enum class KernelResample { Nearest, Bilinear, Bicubic, Area };

// ---- elementwise.cu
// dst[i] = src[i] converted, for F32, F16 and BF16 in any pair.
void launch_convert(const void* src, DType from, void* dst, DType to, int64_t n, cudaStream_t stream);
// y = act(x) over n elements (y may be x).
void launch_activation(DType dtype, const void* x, void* y, int64_t n, KernelAct act, cudaStream_t stream);
// y[i] = a[i] + b[i % nb] (or *), n elements.
void launch_broadcast(DType dtype, bool multiply, const void* a, const void* b, void* y, int64_t n, int64_t nb,
                      cudaStream_t stream);
// x, y [B, N, C]; scale, shift [B, C]: y = x * (1 + scale) + shift.
void launch_adaln(DType dtype, const void* x, const void* scale, const void* shift, void* y, int64_t n,
                  int64_t tokens, int64_t channels, cudaStream_t stream);
// y[r, c] = act(y[r, c] + bias[c]) over a [rows, cols] matrix; bias may be null.
void launch_bias_activation(DType dtype, void* y, const void* bias, int64_t rows, int64_t cols, KernelAct act,
                            cudaStream_t stream);
// NCHW: y[n, c, p] += bias[c] for p < plane.
void launch_channel_bias(DType dtype, void* y, const void* bias, int64_t batch, int64_t channels, int64_t plane,
                         cudaStream_t stream);
// x [B, N, C] += gate [B, C] * y [B, N, C] (y may be x); n = B * N * C.
void launch_gated_residual(DType dtype, void* x, const void* gate, const void* y, int64_t n, int64_t tokens,
                           int64_t channels, cudaStream_t stream);

// ---- norm.cu
// LayerModulate: layer norm without affine, then y = y * (1 + weight[b]) + bias[b] (AdaLN).
enum class RowNorm { Layer, Rms, L2, LayerModulate };
struct RowNormArgs {
  int64_t rows, cols;
  float eps;
  const void* weight;      // [cols] (Layer, Rms) or null; LayerModulate: the scale [rows / tokens, cols]
  const void* bias;        // [cols] (Layer) or null; LayerModulate: the shift [rows / tokens, cols]
  const void* head_scale;  // [heads] (L2) or null
  int64_t tokens, heads;   // L2: row r belongs to head (r / tokens) % heads; LayerModulate: to batch r / tokens
};
void launch_row_norm(RowNorm kind, DType dtype, const void* x, void* y, const RowNormArgs& args, cudaStream_t stream);
// Backend::gated_residual_norm: x += gate[r / tokens] * addend (addend may be x), stored in x's dtype, then y = the
// norm of the stored x: layer norm with args' weight, bias [cols] (each optional), or LayerModulate (modulated).
void launch_gated_residual_norm(bool modulated, DType dtype, void* x, const void* gate, const void* addend, void* y,
                                const RowNormArgs& args, cudaStream_t stream);
// x, y [N, C, H, W] seen as [N * groups, length]; channel of element i of group g: g * cpg + i / plane.
void launch_group_norm(DType dtype, const void* x, void* y, const void* w, const void* b, int64_t images, int groups,
                       int64_t length, int64_t plane, int64_t channels_per_group, float eps, cudaStream_t stream);

// ---- rope.cu, softmax.cu, permute.cu
void launch_rope(DType dtype, const void* x, void* y, const float* cos, const float* sin, int64_t pairs,
                 int64_t half_d, int64_t tokens, cudaStream_t stream);
void launch_softmax(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, cudaStream_t stream);
// Raw bytes of element size esize: y = x with output dim d reading input dim perm[d] (up to 6 dims).
void launch_permute(size_t esize, const void* x, void* y, const std::vector<int64_t>& in_shape,
                    const std::vector<int>& perm, cudaStream_t stream);

// ---- cross_attention_fold.cu
// kb[h * keys_padded + j] = k[h, j, :] . bq[h * dim : (h + 1) * dim] for j < length, else -inf; k [heads, keys, dim].
void launch_fold_key_bias(DType dtype, const void* k, const void* bq, float* kb, int heads, int keys, int keys_padded,
                          int dim, int length, cudaStream_t stream);
// probs = per-head softmax(scale * (scores + kb[row / tokens])) over runs of `keys` columns; scores F32, kb F32
// [rows / tokens, heads * keys], probs of `dtype` [rows, heads * keys].
void launch_head_softmax(DType dtype, const float* scores, const float* kb, void* probs, int64_t rows, int64_t tokens,
                         int heads, int keys, float scale, cudaStream_t stream);

// ---- qkv_attention.cu
struct QkvArgs {
  int64_t batch, tokens, heads, head_dim;  // qkv [batch, tokens, 3 * heads * head_dim]
  int64_t capacity, offset;                // caches [batch, heads, capacity, head_dim], written from offset
  float eps;
  // Backend's QkvRowMap on the device: q [batch, heads, q_rows, head_dim], cache rows [offset, offset + kv_rows);
  // a null map is the identity (its rows = tokens). An entry outside [-1, tokens) gives a row of zeros.
  const int32_t* q_src = nullptr;
  const int32_t* kv_src = nullptr;
  int64_t q_rows = 0, kv_rows = 0;
};
// Backend::qkv_to_attention: q = rope(l2(q heads) * q_scale); k_cache rows = rope(l2(k heads)); v_cache rows =
// v heads. Needs fewer than 2^31 tokens and batch * heads * (q_rows + 2 kv_rows) < 2^31 (32-bit row indices).
void launch_qkv_to_attention(DType dtype, const void* qkv, const void* q_scale, const float* cos, const float* sin,
                             void* q, void* k_cache, void* v_cache, const QkvArgs& args, cudaStream_t stream);

// ---- sampling.cu
struct SampleArgs {
  int64_t batch, tokens, bits;  // output [batch, tokens, bits]
  bool guided;                  // raw has 2 * batch rows (CFG)
  float tau, cfg;
  int top_k;
  float top_p;
  uint64_t seed, stream;
  const uint64_t* seed_ptr;     // device: read instead of seed when not null (BitSampling::seed_tensor)
};
// Backend::sample_bits; uniforms, bits and logits may each be null (not bits and logits both).
void launch_sample_bits(DType dtype, const void* raw, const float* uniforms, uint8_t* bits, float* logits,
                        const SampleArgs& args, cudaStream_t stream);
// Backend::bits_to_codes: codes [batch, d, h * patch, w * patch] from bits [batch, h * w, d * patch^2].
void launch_bits_to_codes(const uint8_t* bits, float* codes, int64_t batch, int64_t d, int64_t h, int64_t w,
                          int patch, float zero, float one, cudaStream_t stream);

// ---- conv2d.cu
struct ConvGeometry {
  int64_t cin, h, w, kh, kw, stride, pad, out_h, out_w;
};
// columns[img][k][p - p0] for images [0, imgs) of x and output pixels [p0, p0 + slab).
void launch_im2col(DType dtype, const void* x, void* columns, const ConvGeometry& g, int64_t imgs, int64_t p0,
                   int64_t slab, cudaStream_t stream);

// ---- resample.cu
struct ResampleGeometry {
  int64_t planes, in_h, in_w, out_h, out_w;
  float scale_h, scale_w;  // in / out
};
void launch_resample(DType dtype, KernelResample mode, const void* x, void* y, const ResampleGeometry& g,
                     cudaStream_t stream);

// ---- image_rgb8.cu
// Backend::image_to_rgb8: rgb [images * pixels, 3] from the F32 / BF16 / F16 image laid out as `source` says.
void launch_image_to_rgb8(DType dtype, const void* image, uint8_t* rgb, const Rgb8Source& source,
                          cudaStream_t stream);

}  // namespace sparvar::cuda

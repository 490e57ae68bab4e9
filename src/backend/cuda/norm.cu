// Normalisations: layer_norm (also fused with AdaLN modulation, and after a gated residual), rms_norm and
// l2_normalize over the last dimension (one block per row), and group_norm over (C/groups, H, W) (one block per
// (image, group)). Statistics in fp32, two passes over the row (mean first, then squared deviations) so a large mean
// does not cancel the variance; rows are re-read from L1/L2 rather than staged. 16-byte accesses when the row length
// and pointers allow.
#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {

// gated_residual_norm's residual, done by the norm's first pass: x[r] += gate[r / tokens] * addend[r], in place.
struct RowResidual {
  void* x;  // the norm's input itself
  const void* gate;
  const void* addend;
};

// v = x + gate * addend at column c of `row`, stored into x; v returns as stored (rounded to T), so the statistics
// and the output are those of the stored x. The same expression as gated_residual_kernel: the same sum.
template <typename T, int N>
__device__ __forceinline__ void residual_pack(const RowResidual& res, const RowNormArgs& args, int64_t row, int64_t c,
                                              float (&v)[N]) {
  T* xp = static_cast<T*>(res.x) + row * args.cols + c;
  float g[N], a[N];
  load_pack<T, N>(xp, v);
  load_pack<T, N>(static_cast<const T*>(res.gate) + (row / args.tokens) * args.cols + c, g);
  load_pack<T, N>(static_cast<const T*>(res.addend) + row * args.cols + c, a);
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] += g[i] * a[i];
  store_pack<T, N>(xp, v);
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = to_float(from_float<T>(v[i]));
}

// kResidual: the first (mean) pass applies `res` first; x is then res.x, and the later passes read the stored sums.
// kHeld: every thread has at most one pack of the row (cols <= blockDim.x * N); it keeps it, with its weight and
// bias, in registers from the first pass on, so the row is read from memory once and the two block reductions
// overlap the weight loads. Otherwise the passes re-read the row (from L1/L2).
template <typename T, int N, RowNorm kKind, bool kResidual, bool kHeld>
__global__ void row_norm_kernel(const T* x, T* y, RowNormArgs args, RowResidual res) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * args.cols;
  T* yr = y + row * args.cols;
  const T* w = static_cast<const T*>(args.weight);
  const T* b = static_cast<const T*>(args.bias);
  if constexpr (kKind == RowNorm::LayerModulate) {  // this row's batch item's scale and shift rows
    w += (row / args.tokens) * args.cols;
    b += (row / args.tokens) * args.cols;
  }
  constexpr bool kMean = kKind == RowNorm::Layer || kKind == RowNorm::LayerModulate;
  constexpr bool kWeight = kKind != RowNorm::L2;  // Layer, Rms: optional; LayerModulate: always (the scale)
  constexpr bool kBias = kKind == RowNorm::Layer || kKind == RowNorm::LayerModulate;
  static_assert(!kResidual || kMean, "the residual is applied in the mean pass");
  const int64_t step = kHeld ? args.cols : int64_t(blockDim.x) * N;  // kHeld: one pass of the loops below
  const int64_t first = int64_t(threadIdx.x) * N;

  // The row's values at c: the held pack, or read again.
  float held[N], wv_held[N], bv_held[N];
  auto values = [&](int64_t c, float (&v)[N]) {
    if constexpr (kHeld) {
#pragma unroll
      for (int i = 0; i < N; ++i) v[i] = held[i];
    } else {
      load_pack<T, N>(xr + c, v);
    }
  };
  if constexpr (kHeld) {
    if (first < args.cols) {
      if constexpr (kResidual) residual_pack<T, N>(res, args, row, first, held);
      else load_pack<T, N>(xr + first, held);
      if (kWeight && w) load_pack<T, N>(w + first, wv_held);
      if (kBias && b) load_pack<T, N>(b + first, bv_held);
    }
  }

  float mean = 0.0f;
  if constexpr (kMean) {
    float s = 0.0f;
    for (int64_t c = first; c < args.cols; c += step) {
      float v[N];
      if constexpr (kHeld) values(c, v);
      else if constexpr (kResidual) residual_pack<T, N>(res, args, row, c, v);
      else load_pack<T, N>(xr + c, v);
#pragma unroll
      for (int i = 0; i < N; ++i) s += v[i];
    }
    mean = block_sum(s, scratch) / static_cast<float>(args.cols);
  }
  float sq = 0.0f;
  for (int64_t c = first; c < args.cols; c += step) {
    float v[N];
    values(c, v);
#pragma unroll
    for (int i = 0; i < N; ++i) sq += (v[i] - mean) * (v[i] - mean);
  }
  sq = block_sum(sq, scratch);

  float factor;
  if constexpr (kKind == RowNorm::L2) {
    factor = 1.0f / fmaxf(sqrtf(sq), args.eps);
    if (args.head_scale) factor *= to_float(static_cast<const T*>(args.head_scale)[(row / args.tokens) % args.heads]);
  } else {
    factor = 1.0f / sqrtf(sq / static_cast<float>(args.cols) + args.eps);
  }
  for (int64_t c = first; c < args.cols; c += step) {
    float v[N], wv[N], bv[N];
    values(c, v);
    if constexpr (kHeld) {
#pragma unroll
      for (int i = 0; i < N; ++i) wv[i] = wv_held[i], bv[i] = bv_held[i];
    } else {
      if (kWeight && w) load_pack<T, N>(w + c, wv);
      if (kBias && b) load_pack<T, N>(b + c, bv);
    }
#pragma unroll
    for (int i = 0; i < N; ++i) {
      float o = (v[i] - mean) * factor;
      if constexpr (kKind == RowNorm::LayerModulate) {
        o = o * (1.0f + wv[i]) + bv[i];
      } else {
        if (kWeight && w) o *= wv[i];
        if (kBias && b) o += bv[i];
      }
      v[i] = o;
    }
    store_pack<T, N>(yr + c, v);
  }
}

template <RowNorm kKind, bool kResidual = false>
void launch_row_norm_kind(DType dtype, const void* x, void* y, const RowNormArgs& args, cudaStream_t stream,
                          const RowResidual& res = {}) {
  dispatch_float(dtype, "norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kVec16<T>;
    const bool vec = args.cols % V == 0 && aligned_to(x, 16) && aligned_to(y, 16) &&
                     (!args.weight || aligned_to(args.weight, 16)) && (!args.bias || aligned_to(args.bias, 16)) &&
                     (!kResidual || (aligned_to(res.gate, 16) && aligned_to(res.addend, 16)));
    const int64_t per_thread = vec ? V : 1;
    // Enough threads to cover the row once (at most 512), in whole warps.
    int64_t threads = (args.cols / per_thread + 31) / 32 * 32;
    threads = threads < 32 ? 32 : (threads > 512 ? 512 : threads);
    const dim3 grid(static_cast<unsigned>(args.rows));
    const unsigned block = static_cast<unsigned>(threads);
    const T* px = static_cast<const T*>(x);
    T* py = static_cast<T*>(y);
    const bool held = threads * per_thread >= args.cols;  // one pack per thread covers the row
    if (vec && held) row_norm_kernel<T, V, kKind, kResidual, true><<<grid, block, 0, stream>>>(px, py, args, res);
    else if (vec) row_norm_kernel<T, V, kKind, kResidual, false><<<grid, block, 0, stream>>>(px, py, args, res);
    else if (held) row_norm_kernel<T, 1, kKind, kResidual, true><<<grid, block, 0, stream>>>(px, py, args, res);
    else row_norm_kernel<T, 1, kKind, kResidual, false><<<grid, block, 0, stream>>>(px, py, args, res);
    CUDA_CHECK_LAUNCH();
  });
}

template <typename T>
__global__ void group_norm_kernel(const T* x, T* y, const T* __restrict__ w, const T* __restrict__ b, int64_t length,
                                  int64_t plane, int64_t channels_per_group, int groups, float eps) {
  __shared__ float scratch[32];
  const int64_t group_index = blockIdx.x;  // n * groups + g
  const T* xg = x + group_index * length;
  T* yg = y + group_index * length;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < length; i += blockDim.x) s += to_float(xg[i]);
  const float mean = block_sum(s, scratch) / static_cast<float>(length);
  float sq = 0.0f;
  for (int64_t i = threadIdx.x; i < length; i += blockDim.x) {
    const float d = to_float(xg[i]) - mean;
    sq += d * d;
  }
  const float rstd = 1.0f / sqrtf(block_sum(sq, scratch) / static_cast<float>(length) + eps);
  const int64_t first_channel = (group_index % groups) * channels_per_group;
  for (int64_t i = threadIdx.x; i < length; i += blockDim.x) {
    float o = (to_float(xg[i]) - mean) * rstd;
    const int64_t c = first_channel + i / plane;
    if (w) o *= to_float(w[c]);
    if (b) o += to_float(b[c]);
    yg[i] = from_float<T>(o);
  }
}

}  // namespace

void launch_row_norm(RowNorm kind, DType dtype, const void* x, void* y, const RowNormArgs& args, cudaStream_t stream) {
  if (args.rows == 0 || args.cols == 0) return;
  switch (kind) {
    case RowNorm::Layer: launch_row_norm_kind<RowNorm::Layer>(dtype, x, y, args, stream); break;
    case RowNorm::Rms: launch_row_norm_kind<RowNorm::Rms>(dtype, x, y, args, stream); break;
    case RowNorm::L2: launch_row_norm_kind<RowNorm::L2>(dtype, x, y, args, stream); break;
    case RowNorm::LayerModulate: launch_row_norm_kind<RowNorm::LayerModulate>(dtype, x, y, args, stream); break;
  }
}

void launch_gated_residual_norm(bool modulated, DType dtype, void* x, const void* gate, const void* addend, void* y,
                                const RowNormArgs& args, cudaStream_t stream) {
  if (args.rows == 0 || args.cols == 0) return;
  const RowResidual res{x, gate, addend};
  if (modulated) launch_row_norm_kind<RowNorm::LayerModulate, true>(dtype, x, y, args, stream, res);
  else launch_row_norm_kind<RowNorm::Layer, true>(dtype, x, y, args, stream, res);
}

void launch_group_norm(DType dtype, const void* x, void* y, const void* w, const void* b, int64_t images, int groups,
                       int64_t length, int64_t plane, int64_t channels_per_group, float eps, cudaStream_t stream) {
  if (images == 0 || length == 0) return;
  dispatch_float(dtype, "group_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    group_norm_kernel<T><<<static_cast<unsigned>(images * groups), 1024, 0, stream>>>(
        static_cast<const T*>(x), static_cast<T*>(y), static_cast<const T*>(w), static_cast<const T*>(b), length, plane,
        channels_per_group, groups, eps);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda

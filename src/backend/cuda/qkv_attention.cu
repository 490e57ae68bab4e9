// qkv_to_attention: one warp per head vector of the fused q/k/v projection ([B, N, 3, H, D] order: rows r =
// ((b * N + n) * 3 + which) * H + h are contiguous D-element runs of the input). The warp reads its row (N
// elements per lane access: two RoPE pairs on the 8/16-byte path, one otherwise), reduces the sum of squares
// with shuffles, then re-reads the row (L1-resident), normalises, rotates and writes q or the cache slot; v rows
// are copied. Everything in fp32, one rounding at the store. Replaces permute + 2 l2_normalize + 2 rope + the
// per-head cache copies.
#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {

constexpr int kThreads = 256;  // 8 warps, 8 head vectors per block

// Index: the row decomposition's integer type, uint32_t when there are fewer than 2^31 rows (always, in
// practice): a warp handles one 128-element row, so 64-bit divisions would cost more than the row's traffic.
template <typename T, int N, typename Index>
__global__ void qkv_to_attention_kernel(const T* __restrict__ qkv, const T* __restrict__ q_scale,
                                        const float* __restrict__ cos_table, const float* __restrict__ sin_table,
                                        T* __restrict__ q, T* __restrict__ k_cache, T* __restrict__ v_cache,
                                        QkvArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t D = a.head_dim, half = D / 2;
  const Index heads = static_cast<Index>(a.heads), tokens = static_cast<Index>(a.tokens);
  const Index rows = static_cast<Index>(a.batch * a.tokens * 3 * a.heads);
  const Index warps = Index(gridDim.x) * (blockDim.x >> 5);
  // r is the same for the 32 lanes of a warp, so every branch below is warp-uniform (the shuffles need that).
  for (Index r = (Index(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
    const Index h = r % heads, hr = r / heads;
    const int which = static_cast<int>(hr % 3);  // 0 q, 1 k, 2 v
    const Index bt = hr / 3, t = bt % tokens, b = bt / tokens;
    const T* in = qkv + int64_t(r) * D;
    const int64_t head = int64_t(b) * a.heads + h;
    T* out = which == 0 ? q + (head * a.tokens + t) * D
                        : (which == 1 ? k_cache : v_cache) + (head * a.capacity + a.offset + t) * D;
    if (which == 2) {
      for (int64_t c = lane * N; c < D; c += 32 * N) {
        float v[N];
        load_pack<T, N>(in + c, v);
        store_pack<T, N>(out + c, v);
      }
      continue;
    }
    float sq = 0.0f;
    for (int64_t c = lane * N; c < D; c += 32 * N) {
      float v[N];
      load_pack<T, N>(in + c, v);
#pragma unroll
      for (int i = 0; i < N; ++i) sq += v[i] * v[i];
    }
    sq = warp_sum(sq);
    float factor = 1.0f / fmaxf(sqrtf(sq), a.eps);
    if (which == 0 && q_scale) factor *= to_float(q_scale[h]);
    const float* cs = cos_table + t * half;
    const float* sn = sin_table + t * half;
    for (int64_t c = lane * N; c < D; c += 32 * N) {
      float v[N];
      load_pack<T, N>(in + c, v);
#pragma unroll
      for (int i = 0; i < N; i += 2) {
        const float x0 = v[i] * factor, x1 = v[i + 1] * factor;
        const int64_t pair = (c + i) / 2;
        const float co = cs[pair], si = sn[pair];
        v[i] = co * x0 - si * x1;
        v[i + 1] = si * x0 + co * x1;
      }
      store_pack<T, N>(out + c, v);
    }
  }
}

}  // namespace

void launch_qkv_to_attention(DType dtype, const void* qkv, const void* q_scale, const float* cos, const float* sin,
                             void* q, void* k_cache, void* v_cache, const QkvArgs& a, cudaStream_t stream) {
  const int64_t rows = a.batch * a.tokens * 3 * a.heads;
  if (rows == 0 || a.head_dim == 0) return;
  dispatch_float(dtype, "qkv_to_attention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pin = static_cast<const T*>(qkv);
    const T* ps = static_cast<const T*>(q_scale);
    T* pq = static_cast<T*>(q);
    T* pk = static_cast<T*>(k_cache);
    T* pv = static_cast<T*>(v_cache);
    // Two pairs per access when every row start is aligned to 4 elements (head_dim % 4 == 0 and aligned bases).
    const size_t quad = 4 * sizeof(T);
    const bool quads = a.head_dim % 4 == 0 && aligned_to(pin, quad) && aligned_to(pq, quad) && aligned_to(pk, quad) &&
                       aligned_to(pv, quad);
    const unsigned grid = grid_for(rows, kThreads / 32);
    const bool narrow = rows < (int64_t{1} << 31) - int64_t{grid} * (kThreads / 32);  // r + warps fits 32 bits
    if (quads && narrow) qkv_to_attention_kernel<T, 4, uint32_t><<<grid, kThreads, 0, stream>>>(pin, ps, cos, sin, pq, pk, pv, a);
    else if (quads) qkv_to_attention_kernel<T, 4, int64_t><<<grid, kThreads, 0, stream>>>(pin, ps, cos, sin, pq, pk, pv, a);
    else if (narrow) qkv_to_attention_kernel<T, 2, uint32_t><<<grid, kThreads, 0, stream>>>(pin, ps, cos, sin, pq, pk, pv, a);
    else qkv_to_attention_kernel<T, 2, int64_t><<<grid, kThreads, 0, stream>>>(pin, ps, cos, sin, pq, pk, pv, a);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda

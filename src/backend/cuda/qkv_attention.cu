// qkv_to_attention: the fused q/k/v projection's output (qkv [B, N, 3, H, D]) into q and the KV cache, one
// DESTINATION head vector at a time: first the q rows in [B, Rq, H] order, then the cache rows in [B, Rk, 2H]
// order (a token's k heads, then its v heads). Heads vary fastest, so neighbouring rows read adjacent input (a
// token's heads are contiguous) and share the token's RoPE table row (L1 hits). A row's token is its map entry
// (the row itself without a map); an entry outside [-1, N) or -1 gives a row of zeros. q and k rows: sum of
// squares, normalise (q also by its head scale), rotate the interleaved pairs; v rows are copied. Everything in
// fp32, one rounding at the store. Replaces permute + 2 l2_normalize + 2 rope + the per-head cache copies.
//
// Head dim 64 or 128 with 16-byte aligned pointers (the models): a group of D/8 lanes per row, 8 elements per lane
// loaded and stored as 16-byte packs and kept in registers, the sum of squares by shuffles inside the group, the
// lane's 4 cos and 4 sin as one float4 each. Other even head dims or alignments: a warp per row, one pair per
// lane, the row read twice (the second time from L1). Row indices are 32-bit (the host checks the counts): 64-bit
// divisions per row would cost more than the row's traffic.
// H100, bf16, B=2, 4096 tokens, 28 heads, D=128 (352 MB read + written): 131 us (a device-to-device copy of as many
// bytes: 123 us); the warp-per-row kernel with 8-byte accesses and a re-read that this replaces: 207 us. With maps
// (shuffled, padded rows) 7% slower: the reads are gathers.
#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kLaneElems = 8;  // elements per lane of the grouped kernel: D = group size * 8

// The 32-bit row geometry of a launch (computed once per thread from QkvArgs).
struct RowSpace {
  uint32_t heads, tokens, q_rows, kv_rows;
  uint32_t q_units;  // destination rows of q: B * Rq * H; the cache rows (B * Rk * 2H) follow
  uint32_t units;    // all destination rows

  __device__ explicit RowSpace(const QkvArgs& a)
      : heads(static_cast<uint32_t>(a.heads)),
        tokens(static_cast<uint32_t>(a.tokens)),
        q_rows(static_cast<uint32_t>(a.q_rows)),
        kv_rows(static_cast<uint32_t>(a.kv_rows)),
        q_units(static_cast<uint32_t>(a.batch * a.q_rows * a.heads)),
        units(static_cast<uint32_t>(a.batch * a.heads * (a.q_rows + 2 * a.kv_rows))) {}
};

// One destination row: where it reads and writes.
template <typename T>
struct RowJob {
  const T* in;                // the token's head vector (only when valid)
  const float *cos, *sin;     // the token's table rows (only when valid)
  T* out;
  uint32_t head;
  int which;                  // 0 q, 1 k, 2 v
  bool valid;                 // false: padding (or a bad map entry), written with zeros
};

template <typename T>
__device__ __forceinline__ RowJob<T> locate(uint32_t row, const RowSpace& s, const QkvArgs& a, const T* qkv,
                                            const float* cos_table, const float* sin_table, T* q, T* k_cache,
                                            T* v_cache) {
  const uint64_t D = static_cast<uint64_t>(a.head_dim);
  RowJob<T> job;
  uint32_t b, r, slot;  // slot: the head vector's index among its token's 3H (which * H + head)
  int32_t token;
  if (row < s.q_units) {
    job.head = row % s.heads;
    const uint32_t br = row / s.heads;
    r = br % s.q_rows;
    b = br / s.q_rows;
    token = a.q_src ? a.q_src[r] : static_cast<int32_t>(r);
    slot = job.head;
    job.which = 0;
    job.out = q + ((uint64_t(b) * s.heads + job.head) * s.q_rows + r) * D;
  } else {
    const uint32_t cache_row = row - s.q_units, j = cache_row % (2 * s.heads), br = cache_row / (2 * s.heads);
    r = br % s.kv_rows;
    b = br / s.kv_rows;
    token = a.kv_src ? a.kv_src[r] : static_cast<int32_t>(r);
    slot = s.heads + j;
    job.which = j < s.heads ? 1 : 2;
    job.head = j < s.heads ? j : j - s.heads;
    const uint64_t dst = (uint64_t(b) * s.heads + job.head) * uint64_t(a.capacity) + uint64_t(a.offset) + r;
    job.out = (job.which == 1 ? k_cache : v_cache) + dst * D;
  }
  job.valid = static_cast<uint32_t>(token) < s.tokens;  // -1 and anything out of range: zeros
  const uint64_t t = job.valid ? static_cast<uint32_t>(token) : 0;
  job.in = qkv + ((uint64_t(b) * s.tokens + t) * 3 * s.heads + slot) * D;
  job.cos = cos_table + t * (D / 2);
  job.sin = sin_table + t * (D / 2);
  return job;
}

// 1 / max(||x||, eps), times q's head scale on q rows.
template <typename T>
__device__ __forceinline__ float l2_factor(float sq, const RowJob<T>& job, const T* q_scale, float eps) {
  float factor = 1.0f / fmaxf(sqrtf(sq), eps);
  if (job.which == 0 && q_scale) factor *= to_float(q_scale[job.head]);
  return factor;
}

// The normalised pair (x0, x1) rotated by (co, si), in place.
__device__ __forceinline__ void rotate(float& x0, float& x1, float factor, float co, float si) {
  const float a = x0 * factor, b = x1 * factor;
  x0 = co * a - si * b;
  x1 = si * a + co * b;
}

// ---- head dims 64 and 128: G = D / 8 lanes per row

// The lanes of this thread's group: shuffles inside a group do not wait for the warp's other groups, which may
// be on another branch (a v row beside a k row, a padding row).
template <int G>
__device__ __forceinline__ unsigned group_mask() {
  if constexpr (G == 32) return 0xffffffffu;
  else return ((1u << G) - 1u) << ((threadIdx.x & 31) & ~unsigned(G - 1));
}

template <int G>
__device__ __forceinline__ float group_sum(float v, unsigned mask) {
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(mask, v, o);
  return v;
}

// The lane's 8 elements as 16-byte packs (one for bf16, two for f32).
template <typename T>
__device__ __forceinline__ void load_lane(const T* p, float (&x)[kLaneElems]) {
  constexpr int V = kVec16<T>;
#pragma unroll
  for (int i = 0; i < kLaneElems; i += V) {
    float part[V];
    load_pack<T, V>(p + i, part);
#pragma unroll
    for (int j = 0; j < V; ++j) x[i + j] = part[j];
  }
}

template <typename T>
__device__ __forceinline__ void store_lane(T* p, const float (&x)[kLaneElems]) {
  constexpr int V = kVec16<T>;
#pragma unroll
  for (int i = 0; i < kLaneElems; i += V) {
    float part[V];
#pragma unroll
    for (int j = 0; j < V; ++j) part[j] = x[i + j];
    store_pack<T, V>(p + i, part);
  }
}

template <typename T, int G>
__global__ void __launch_bounds__(kThreads) qkv_grouped_kernel(
    const T* __restrict__ qkv, const T* __restrict__ q_scale, const float* __restrict__ cos_table,
    const float* __restrict__ sin_table, T* __restrict__ q, T* __restrict__ k_cache, T* __restrict__ v_cache,
    QkvArgs a) {
  const RowSpace s(a);
  const unsigned sub = threadIdx.x % G, mask = group_mask<G>();
  const uint32_t groups = gridDim.x * (kThreads / G);
  // row is the same for a group's lanes: every branch below is group-uniform (the shuffles need that).
  for (uint32_t row = (blockIdx.x * kThreads + threadIdx.x) / G; row < s.units; row += groups) {
    const RowJob<T> job = locate(row, s, a, qkv, cos_table, sin_table, q, k_cache, v_cache);
    float x[kLaneElems] = {};
    if (job.valid) load_lane(job.in + sub * kLaneElems, x);
    if (job.valid && job.which != 2) {
      float sq = 0.0f;
#pragma unroll
      for (int i = 0; i < kLaneElems; ++i) sq += x[i] * x[i];
      const float factor = l2_factor(group_sum<G>(sq, mask), job, q_scale, a.eps);
      const float4 c = reinterpret_cast<const float4*>(job.cos)[sub];
      const float4 n = reinterpret_cast<const float4*>(job.sin)[sub];
      rotate(x[0], x[1], factor, c.x, n.x);
      rotate(x[2], x[3], factor, c.y, n.y);
      rotate(x[4], x[5], factor, c.z, n.z);
      rotate(x[6], x[7], factor, c.w, n.w);
    }
    store_lane(job.out + sub * kLaneElems, x);
  }
}

// ---- any even head dim: a warp per row, one (x0, x1) pair per lane access

template <typename T>
__global__ void qkv_warp_kernel(const T* __restrict__ qkv, const T* __restrict__ q_scale,
                                const float* __restrict__ cos_table, const float* __restrict__ sin_table,
                                T* __restrict__ q, T* __restrict__ k_cache, T* __restrict__ v_cache, QkvArgs a) {
  const RowSpace s(a);
  const uint32_t lane = threadIdx.x & 31, D = static_cast<uint32_t>(a.head_dim);
  const uint32_t warps = gridDim.x * (kThreads / 32);
  // row is the same for the 32 lanes of a warp, so every branch below is warp-uniform (the shuffles need that).
  for (uint32_t row = (blockIdx.x * kThreads + threadIdx.x) / 32; row < s.units; row += warps) {
    const RowJob<T> job = locate(row, s, a, qkv, cos_table, sin_table, q, k_cache, v_cache);
    if (!job.valid || job.which == 2) {
      for (uint32_t c = 2 * lane; c < D; c += 64) {
        float v[2] = {};
        if (job.valid) load_pack<T, 2>(job.in + c, v);
        store_pack<T, 2>(job.out + c, v);
      }
      continue;
    }
    float sq = 0.0f;
    for (uint32_t c = 2 * lane; c < D; c += 64) {
      float v[2];
      load_pack<T, 2>(job.in + c, v);
      sq += v[0] * v[0] + v[1] * v[1];
    }
    const float factor = l2_factor(warp_sum(sq), job, q_scale, a.eps);
    for (uint32_t c = 2 * lane; c < D; c += 64) {
      float v[2];
      load_pack<T, 2>(job.in + c, v);
      rotate(v[0], v[1], factor, job.cos[c / 2], job.sin[c / 2]);
      store_pack<T, 2>(job.out + c, v);
    }
  }
}

template <typename T, int G>
void launch_grouped(const T* qkv, const T* q_scale, const float* cos, const float* sin, T* q, T* k, T* v,
                    const QkvArgs& a, int64_t units, cudaStream_t stream) {
  qkv_grouped_kernel<T, G><<<grid_for(units * G, kThreads), kThreads, 0, stream>>>(qkv, q_scale, cos, sin, q, k, v, a);
}

}  // namespace

void launch_qkv_to_attention(DType dtype, const void* qkv, const void* q_scale, const float* cos, const float* sin,
                             void* q, void* k_cache, void* v_cache, const QkvArgs& a, cudaStream_t stream) {
  const int64_t units = a.batch * a.heads * (a.q_rows + 2 * a.kv_rows);
  if (units == 0 || a.head_dim == 0) return;
  dispatch_float(dtype, "qkv_to_attention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pin = static_cast<const T*>(qkv);
    const T* ps = static_cast<const T*>(q_scale);
    T* pq = static_cast<T*>(q);
    T* pk = static_cast<T*>(k_cache);
    T* pv = static_cast<T*>(v_cache);
    // Row starts are multiples of D elements (and table rows of D/2 floats): aligned bases make every pack aligned.
    const bool aligned = aligned_to(pin, 16) && aligned_to(pq, 16) && aligned_to(pk, 16) && aligned_to(pv, 16) &&
                         aligned_to(cos, 16) && aligned_to(sin, 16);
    if (aligned && a.head_dim == 128)
      launch_grouped<T, 128 / kLaneElems>(pin, ps, cos, sin, pq, pk, pv, a, units, stream);
    else if (aligned && a.head_dim == 64)
      launch_grouped<T, 64 / kLaneElems>(pin, ps, cos, sin, pq, pk, pv, a, units, stream);
    else
      qkv_warp_kernel<T><<<grid_for(units, kThreads / 32), kThreads, 0, stream>>>(pin, ps, cos, sin, pq, pk, pv, a);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda

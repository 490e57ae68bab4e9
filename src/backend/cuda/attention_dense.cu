// Dense attention with the ScaleMask and kv_lengths visibility rule (attention_mask.h), softmax in fp32.
//
// BF16 with head dim 64 or 128 runs a FlashAttention-2 style kernel on the tensor cores (mma.sync m16n8k16,
// bf16 in, fp32 accumulate): a block of 4 warps owns 64 query rows (16 per warp), walks 64-key tiles of K and V
// double-buffered in shared memory through cp.async, keeps the running max / sum / output in registers and
// reuses the S accumulators as the A operand of P V. Key tiles past the block's last visible key are skipped.
// Everything else (F32, other head dims up to 256) runs a simpler fp32 kernel: one warp per query row,
// 32-key chunks of K and V staged in shared memory, the same online softmax.
#include <cuda_bf16.h>

#include "backend/cuda/attention_kernel.h"
#include "backend/cuda/device_math.cuh"
#include "backend/cuda/mma_bf16.cuh"

namespace sparvar::cuda {

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Tensor-core kernel (bf16, D = 64 or 128).

constexpr int kFlashRows = 64;   // query rows per block
constexpr int kFlashKeys = 64;   // keys per tile
constexpr int kFlashThreads = 128;

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// kBufs K and V tiles: 2 to prefetch the next key tile; 1 where every row sees at most one tile (cross-attention
// to a short text), which needs a third less shared memory and so fits more blocks per SM.
// bf16 per shared-memory row: +16 bytes so ldmatrix rows hit distinct banks.
template <int D>
constexpr int kFlashStride = D + 8;

template <int D, int kBufs>
struct FlashSmem {
  static constexpr int kStride = kFlashStride<D>;
  static constexpr int kTile = kFlashRows * kStride;
  static constexpr size_t kBytes = sizeof(bf16) * (kTile + 2 * kBufs * kFlashKeys * kStride);  // Q, K[], V[]
};

// Copies rows [row0, row0 + 64) of a [rows, D] bf16 matrix (rows `row_stride` elements apart) into a padded
// shared tile; rows >= rows_total are zero.
template <int D>
__device__ __forceinline__ void load_tile_async(bf16* tile, const bf16* src, int64_t row0, int64_t rows_total,
                                                int64_t row_stride = D) {
  constexpr int kChunksPerRow = D / 8;
  constexpr int kChunks = kFlashRows * kChunksPerRow;
  for (int c = threadIdx.x; c < kChunks; c += kFlashThreads) {
    const int r = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    const int64_t row = row0 + r;
    const bool inside = row < rows_total;
    cp_async16(tile + r * kFlashStride<D> + col, src + (inside ? row : 0) * row_stride + col, inside ? 16 : 0);
  }
}

template <int D, int kBufs>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_kernel(AttentionArgs args, AttentionVisibility vis) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  using Smem = FlashSmem<D, kBufs>;
  constexpr int S = Smem::kStride;
  bf16* q_tile = reinterpret_cast<bf16*>(smem_raw);
  bf16* k_tiles = q_tile + Smem::kTile;                 // kBufs buffers
  bf16* v_tiles = k_tiles + kBufs * kFlashKeys * S;     // kBufs buffers
  __shared__ int block_key_end;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, batch = bh / args.heads;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kFlashRows;
  const bf16* q = static_cast<const bf16*>(args.q) + args.row_base(bh, args.q_tokens_major);
  const bf16* k = static_cast<const bf16*>(args.k) + bh * args.nk * D;
  const bf16* v = static_cast<const bf16*>(args.v) + bh * args.nk * D;
  bf16* o = static_cast<bf16*>(args.o) + args.row_base(bh, args.o_tokens_major);
  const int64_t q_stride = args.row_stride(args.q_tokens_major), o_stride = args.row_stride(args.o_tokens_major);

  // The block walks keys up to the furthest visible key of any of its rows.
  if (threadIdx.x == 0) block_key_end = 0;
  __syncthreads();
  if (threadIdx.x < kFlashRows && q0 + threadIdx.x < args.nq)
    atomicMax(&block_key_end, static_cast<int>(vis.visible_end(q0 + threadIdx.x, batch)));
  // This thread's two rows (lane / 4 and lane / 4 + 8 of the warp's 16); rows past Nq see every key (unused).
  const int64_t row_a = q0 + warp * 16 + lane / 4, row_b = row_a + 8;
  const int64_t end_a = row_a < args.nq ? vis.visible_end(row_a, batch) : args.nk;
  const int64_t end_b = row_b < args.nq ? vis.visible_end(row_b, batch) : args.nk;

  __syncthreads();  // block_key_end is final
  // Keys at or past block_key_end are never read (they load as zeros): no row sees them, and a KV cache's
  // unwritten tail may hold anything, NaN included (0 x NaN would poison the P.V product).
  const int64_t key_end = block_key_end;
  load_tile_async<D>(q_tile, q, q0, args.nq, q_stride);
  load_tile_async<D>(k_tiles, k, 0, key_end);
  load_tile_async<D>(v_tiles, v, 0, key_end);
  cp_async_commit();
  const int tiles = static_cast<int>((key_end + kFlashKeys - 1) / kFlashKeys);

  uint32_t qf[D / 16][4];
  float acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;

  for (int t = 0; t < tiles; ++t) {
    // One buffer: the launcher chose it because there is one key tile (tiles <= 1), so nothing to prefetch.
    const int buf = kBufs == 2 ? t & 1 : 0;
    bool prefetched = false;
    if constexpr (kBufs == 2) {
      if (t + 1 < tiles) {  // prefetch the next tile into the other buffer
        load_tile_async<D>(k_tiles + (buf ^ 1) * kFlashKeys * S, k, int64_t(t + 1) * kFlashKeys, key_end);
        load_tile_async<D>(v_tiles + (buf ^ 1) * kFlashKeys * S, v, int64_t(t + 1) * kFlashKeys, key_end);
        cp_async_commit();
        cp_async_wait<1>();
        prefetched = true;
      }
    }
    if (!prefetched) cp_async_wait<0>();
    __syncthreads();
    if (t == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        ldmatrix_x4(qf[kk], q_tile + (warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * S + kk * 16 + (lane / 16) * 8);
    }
    const bf16* kt = k_tiles + buf * kFlashKeys * S;
    const bf16* vt = v_tiles + buf * kFlashKeys * S;

    // S = Q K^T for this warp's 16 rows and the tile's 64 keys: 8 n-tiles of 8 keys.
    float s[kFlashKeys / 8][4];
#pragma unroll
    for (int i = 0; i < kFlashKeys / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < kFlashKeys / 16; ++np) {
        uint32_t b[4];
        ldmatrix_x4(b, kt + (np * 16 + (lane % 8) + (lane / 16) * 8) * S + kk * 16 + ((lane / 8) % 2) * 8);
        mma_bf16(s[2 * np], qf[kk], b[0], b[1]);
        mma_bf16(s[2 * np + 1], qf[kk], b[2], b[3]);
      }
    }

    // Scale, mask, online softmax. Each row's 64 values are spread over the 4 lanes of a quad.
    const int64_t key0 = int64_t(t) * kFlashKeys + (lane % 4) * 2;
    float tile_max_a = -INFINITY, tile_max_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kFlashKeys / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t key = key0 + nt * 8 + e;
        s[nt][e] = key < end_a ? s[nt][e] * args.scale_log2 : -INFINITY;
        s[nt][2 + e] = key < end_b ? s[nt][2 + e] * args.scale_log2 : -INFINITY;
        tile_max_a = fmaxf(tile_max_a, s[nt][e]);
        tile_max_b = fmaxf(tile_max_b, s[nt][2 + e]);
      }
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      tile_max_a = fmaxf(tile_max_a, __shfl_xor_sync(0xffffffffu, tile_max_a, off));
      tile_max_b = fmaxf(tile_max_b, __shfl_xor_sync(0xffffffffu, tile_max_b, off));
    }
    const float new_a = fmaxf(m_a, tile_max_a), new_b = fmaxf(m_b, tile_max_b);
    // A row with nothing visible yet keeps max -inf; subtracting 0 then gives exp2(-inf) = 0, never NaN.
    const float base_a = new_a == -INFINITY ? 0.0f : new_a, base_b = new_b == -INFINITY ? 0.0f : new_b;
    const float corr_a = exp2f(m_a - base_a), corr_b = exp2f(m_b - base_b);
    m_a = new_a;
    m_b = new_b;
    float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
    for (int nt = 0; nt < kFlashKeys / 8; ++nt) {
      s[nt][0] = exp2f(s[nt][0] - base_a);
      s[nt][1] = exp2f(s[nt][1] - base_a);
      s[nt][2] = exp2f(s[nt][2] - base_b);
      s[nt][3] = exp2f(s[nt][3] - base_b);
      sum_a += s[nt][0] + s[nt][1];
      sum_b += s[nt][2] + s[nt][3];
    }
    l_a = l_a * corr_a + sum_a;  // per-lane partial sums; the quad is summed at the end
    l_b = l_b * corr_b + sum_b;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      acc[dt][0] *= corr_a;
      acc[dt][1] *= corr_a;
      acc[dt][2] *= corr_b;
      acc[dt][3] *= corr_b;
    }

    // O += P V: the S accumulators of key tiles 2ks, 2ks+1 are exactly the A fragment of key step ks.
#pragma unroll
    for (int ks = 0; ks < kFlashKeys / 16; ++ks) {
      const uint32_t pa[4] = {pack_bf16(s[2 * ks][0], s[2 * ks][1]), pack_bf16(s[2 * ks][2], s[2 * ks][3]),
                              pack_bf16(s[2 * ks + 1][0], s[2 * ks + 1][1]),
                              pack_bf16(s[2 * ks + 1][2], s[2 * ks + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, vt + (ks * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * S + dp * 16 + (lane / 16) * 8);
        mma_bf16(acc[2 * dp], pa, b[0], b[1]);
        mma_bf16(acc[2 * dp + 1], pa, b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is refilled
  }

#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, off);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, off);
  }
  const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    const int col = dt * 8 + (lane % 4) * 2;
    if (row_a < args.nq)
      *reinterpret_cast<uint32_t*>(o + row_a * o_stride + col) = pack_bf16(acc[dt][0] * inv_a, acc[dt][1] * inv_a);
    if (row_b < args.nq)
      *reinterpret_cast<uint32_t*>(o + row_b * o_stride + col) = pack_bf16(acc[dt][2] * inv_b, acc[dt][3] * inv_b);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Generic fp32 kernel (any float dtype, D <= 256).

constexpr int kGenericWarps = 8;  // query rows per block
constexpr int kGenericKeys = 32;  // keys per chunk (one per lane)

template <typename T>
__global__ void __launch_bounds__(kGenericWarps * 32) generic_attention_kernel(AttentionArgs args, AttentionVisibility vis) {
  extern __shared__ float smem[];
  const int d = args.d, stride = d + 1;  // +1 float: lane j reads row j of K without bank conflicts
  float* k_chunk = smem;
  float* v_chunk = k_chunk + kGenericKeys * stride;
  float* q_rows = v_chunk + kGenericKeys * stride;  // [warps][d]
  __shared__ int block_key_end;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, batch = bh / args.heads;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGenericWarps + warp;
  const bool active = row < args.nq;
  const T* q = static_cast<const T*>(args.q) + args.row_base(bh, args.q_tokens_major);
  const T* k = static_cast<const T*>(args.k) + bh * args.nk * d;
  const T* v = static_cast<const T*>(args.v) + bh * args.nk * d;
  T* o = static_cast<T*>(args.o) + args.row_base(bh, args.o_tokens_major);
  const int64_t q_stride = args.row_stride(args.q_tokens_major), o_stride = args.row_stride(args.o_tokens_major);

  if (threadIdx.x == 0) block_key_end = 0;
  __syncthreads();
  const int64_t end = active ? vis.visible_end(row, batch) : 0;
  if (lane == 0 && active) atomicMax(&block_key_end, static_cast<int>(end));
  float* qr = q_rows + warp * d;
  for (int i = lane; i < d; i += 32) qr[i] = active ? to_float(q[row * q_stride + i]) : 0.0f;
  __syncthreads();

  constexpr int kPerLane = kMaxHeadDim / 32;
  float acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) acc[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int64_t k0 = 0; k0 < block_key_end; k0 += kGenericKeys) {
    for (int i = threadIdx.x; i < kGenericKeys * d; i += blockDim.x) {
      const int r = i / d, c = i % d;
      const bool inside = k0 + r < block_key_end;  // never read keys no row sees (see the flash kernel)
      k_chunk[r * stride + c] = inside ? to_float(k[(k0 + r) * d + c]) : 0.0f;
      v_chunk[r * stride + c] = inside ? to_float(v[(k0 + r) * d + c]) : 0.0f;
    }
    __syncthreads();
    const int64_t key = k0 + lane;
    float logit = 0.0f;
    for (int c = 0; c < d; ++c) logit += qr[c] * k_chunk[lane * stride + c];
    logit = key < end ? logit * args.scale_log2 : -INFINITY;
    const float new_m = fmaxf(m, warp_max(logit));
    const float base = new_m == -INFINITY ? 0.0f : new_m;
    const float p = exp2f(logit - base), corr = exp2f(m - base);
    m = new_m;
    l = l * corr + warp_sum(p);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[i] *= corr;
    for (int j = 0; j < kGenericKeys; ++j) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
      for (int i = 0; i < kPerLane; ++i)
        if (lane + 32 * i < d) acc[i] += pj * v_chunk[j * stride + lane + 32 * i];
    }
    __syncthreads();
  }
  if (!active) return;
  const float inv = 1.0f / l;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i)
    if (lane + 32 * i < d) o[row * o_stride + lane + 32 * i] = from_float<T>(acc[i] * inv);
}

template <int D, int kBufs>
void launch_flash_bufs(const AttentionArgs& args, const AttentionVisibility& vis, int64_t bh, cudaStream_t stream) {
  constexpr size_t smem = FlashSmem<D, kBufs>::kBytes;
  // Over 48 KB of dynamic shared memory needs opting in (per device, so on every launch: it is cheap).
  CUDA_CHECK(cudaFuncSetAttribute(flash_attention_kernel<D, kBufs>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>((args.nq + kFlashRows - 1) / kFlashRows), static_cast<unsigned>(bh));
  flash_attention_kernel<D, kBufs><<<grid, kFlashThreads, smem, stream>>>(args, vis);
  CUDA_CHECK_LAUNCH();
}

template <int D>
void launch_flash(const AttentionArgs& args, const AttentionVisibility& vis, int64_t bh, cudaStream_t stream) {
  if (args.nk <= kFlashKeys) launch_flash_bufs<D, 1>(args, vis, bh, stream);
  else launch_flash_bufs<D, 2>(args, vis, bh, stream);
}

}  // namespace

void launch_dense_attention(DType dtype, const AttentionArgs& args, const AttentionVisibility& vis, int64_t batch_heads,
                            cudaStream_t stream) {
  const bool aligned = aligned_to(args.q, 16) && aligned_to(args.k, 16) && aligned_to(args.v, 16) && aligned_to(args.o, 16);
  if (dtype == DType::BF16 && aligned && (args.d == 64 || args.d == 128)) {
    if (args.d == 64) launch_flash<64>(args, vis, batch_heads, stream);
    else launch_flash<128>(args, vis, batch_heads, stream);
    return;
  }
  const size_t smem = sizeof(float) * (2 * kGenericKeys * (args.d + 1) + kGenericWarps * args.d);
  const dim3 grid(static_cast<unsigned>((args.nq + kGenericWarps - 1) / kGenericWarps), static_cast<unsigned>(batch_heads));
  dispatch_float(dtype, "attention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    CUDA_CHECK(cudaFuncSetAttribute(generic_attention_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem)));
    generic_attention_kernel<T><<<grid, kGenericWarps * 32, smem, stream>>>(args, vis);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda

// Dense attention whose keys all fit one 64-key tile: cross-attention of image tokens to a short text (Infinity:
// 32..77 text tokens, at most 64 visible per batch item). bf16, head dim 64 or 128, kv_lengths, no ScaleMask.
//
// With so few keys the work is streaming Q in and O out (2 x 58.7 MB per Infinity-8B call at 4096 tokens),
// so the kernel is built to keep DRAM busy rather than the tensor cores:
// - a block of 8 warps stages its (batch, head)'s K and V once (zeros past the visible keys, which are never
//   read: a KV cache or padded text may hold NaN there) and then walks a long range of query rows;
// - each warp owns 16-row slabs of that range and two slab buffers: the next slab's Q lands by cp.async while
//   the current one computes, with no block-wide barrier after the K/V staging;
// - S = Q K^T and O = P V on mma.sync m16n8k16 (fp32 accumulate), only over the 16-key steps holding a visible
//   key; one-pass softmax (every key is in the tile, so no online rescale);
// - the output replaces Q in the slab buffer and leaves with 16-byte stores, two full rows per warp instruction;
// - the grid is one wave: every block resident at once, the (batch, head) pairs splitting the SMs evenly.
#include <cuda_bf16.h>

#include <algorithm>
#include <array>
#include <atomic>

#include "backend/cuda/attention_kernel.h"
#include "backend/cuda/attention_mma.cuh"
#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {

constexpr int kSlabRows = 16;  // query rows a warp computes at once (one m16 tile)
constexpr int kShortWarps = 8;
constexpr int kShortThreads = kShortWarps * 32;
constexpr int kSlabBuffers = 2;  // per warp: the slab being computed and the next one landing

template <int D>
struct ShortSmem {
  static constexpr int kStride = kFlashStride<D>;
  static constexpr int kKeyTile = kFlashKeys * kStride;
  static constexpr int kSlab = kSlabRows * kStride;
  // K, V, then every warp's slab buffers. D = 128: 102 KB, two blocks (16 warps) per SM; D = 64: 54 KB.
  static constexpr size_t kBytes = sizeof(bf16) * (2 * kKeyTile + kShortWarps * kSlabBuffers * kSlab);
};

// Two blocks per SM hold 16 warps: with one 4 KB slab in flight per warp that is ~8 MB over an H100, enough for
// ~3 TB/s at the latency of a loaded memory system. It also caps the registers at 128 per thread.
constexpr int kShortMinBlocks = 2;

// softmax(Q K^T * scale) V for the 16 query rows in `slab` (padded rows, like K and V); the bf16 result replaces
// them in `slab`. Keys [0, key_end) are visible, 1 <= key_end <= 16 * kKeySteps: kKeySteps is a template
// parameter so that the products are straight-line code (guards per 16-key step kept the compiler from issuing
// the next step's ldmatrix before the current step's mma).
template <int D, int kKeySteps>
__device__ __forceinline__ void attend_slab(bf16* slab, const bf16* k_tile, const bf16* v_tile, int key_end,
                                            float scale_log2, int lane) {
  constexpr int kKeyBlocks = 2 * kKeySteps;  // 8-key n-tiles of S
  float s[kKeyBlocks][4];
#pragma unroll
  for (int i = 0; i < kKeyBlocks; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t qf[4];
    load_a_fragment<D>(qf, slab, kk * 16, lane);
#pragma unroll
    for (int np = 0; np < kKeySteps; ++np) {
      uint32_t b[4];
      load_k_fragments<D>(b, k_tile, np * 16, kk * 16, lane);
      mma_bf16(s[2 * np], qf, b[0], b[1]);
      mma_bf16(s[2 * np + 1], qf, b[2], b[3]);
    }
  }

  // One-pass softmax. Key 0 is visible to every row (kv_lengths >= 1), so each row max is finite.
  float max_a = -INFINITY, max_b = -INFINITY;
  scale_mask_max(s, (lane % 4) * 2, key_end, key_end, scale_log2, max_a, max_b);
  max_a = warp_max<4>(max_a);
  max_b = warp_max<4>(max_b);
  float sum_a = 0.0f, sum_b = 0.0f;
  exp2_and_sum(s, max_a, max_b, sum_a, sum_b);
  const float inv_a = 1.0f / warp_sum<4>(sum_a), inv_b = 1.0f / warp_sum<4>(sum_b);
  uint32_t p[kKeySteps][4];
#pragma unroll
  for (int ks = 0; ks < kKeySteps; ++ks) scores_as_a_fragment(p[ks], s[2 * ks], s[2 * ks + 1]);

  __syncwarp();  // every lane has read its Q fragments: the slab now takes the output
  // O = P V in 64-column chunks (32 live accumulators, not D / 2), normalised, rounded and put in the slab.
  bf16* row_a = slab + (lane / 4) * kFlashStride<D>;
  bf16* row_b = row_a + 8 * kFlashStride<D>;
#pragma unroll
  for (int c0 = 0; c0 < D; c0 += 64) {
    float acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < kKeySteps; ++ks) {
#pragma unroll
      for (int dp = 0; dp < 4; ++dp) {
        uint32_t b[4];
        load_v_fragments<D>(b, v_tile, ks * 16, c0 + dp * 16, lane);
        mma_bf16(acc[2 * dp], p[ks], b[0], b[1]);
        mma_bf16(acc[2 * dp + 1], p[ks], b[2], b[3]);
      }
    }
#pragma unroll
    for (int dt = 0; dt < 8; ++dt) {
      const int column = c0 + dt * 8 + (lane % 4) * 2;
      *reinterpret_cast<uint32_t*>(row_a + column) = pack_bf16(acc[dt][0] * inv_a, acc[dt][1] * inv_a);
      *reinterpret_cast<uint32_t*>(row_b + column) = pack_bf16(acc[dt][2] * inv_b, acc[dt][3] * inv_b);
    }
  }
  __syncwarp();  // the slab's output is complete before any lane reads it back
}

// Writes the slab's rows that exist (row0 + r < nq) to o with 16-byte stores: each warp instruction covers
// 512 contiguous bytes of the slab, two 256-byte rows at D = 128.
template <int D>
__device__ __forceinline__ void store_slab(bf16* o, const bf16* slab, int64_t row0, int64_t nq, int64_t o_stride,
                                           int lane) {
  constexpr int kChunksPerRow = D / 8;
#pragma unroll
  for (int i = 0; i < kSlabRows * kChunksPerRow / 32; ++i) {
    const int c = i * 32 + lane, r = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    if (row0 + r < nq)
      *reinterpret_cast<uint4*>(o + (row0 + r) * o_stride + col) =
          *reinterpret_cast<const uint4*>(slab + r * kFlashStride<D> + col);
  }
  __syncwarp();  // every lane has read the slab before it is refilled
}

// The operands of one block: its (batch, head)'s rows and where they go.
struct ShortBlock {
  const bf16* q;
  bf16* o;
  int64_t q_stride, o_stride, nq;
  int64_t first;    // this warp's first slab row
  int64_t row_end;  // the block's last row + 1
  int key_end;
  float scale_log2;
};

// Runs this warp's slabs (rows first, first + kStep, ...) after the first one's Q was requested into buffers[0]
// and the second one's into buffers[1], one cp.async group each (the K/V group before them).
template <int D, int kKeySteps>
__device__ __forceinline__ void walk_slabs(const ShortBlock& blk, const bf16* k_tile, const bf16* v_tile,
                                           bf16* buffers, int lane) {
  constexpr int64_t kStep = kSlabRows * kShortWarps;  // between one warp's slabs
  int buffer = 0;
  for (int64_t row0 = blk.first; row0 < blk.row_end; row0 += kStep, buffer ^= 1) {
    bf16* slab = buffers + buffer * ShortSmem<D>::kSlab;
    if (row0 != blk.first) {
      cp_async_wait<1>();
      __syncwarp();  // the slab's copies by every lane are visible to the whole warp
    }
    attend_slab<D, kKeySteps>(slab, k_tile, v_tile, blk.key_end, blk.scale_log2, lane);
    store_slab<D>(blk.o, slab, row0, blk.nq, blk.o_stride, lane);
    // The next-but-one slab into the buffer just emptied; a group even when there is none, so that "all but the
    // newest group" above is always the slab about to be computed.
    if (row0 + 2 * kStep < blk.row_end)
      load_rows_async<D, kSlabRows, 32>(slab, blk.q, row0 + 2 * kStep, blk.nq, blk.q_stride, lane);
    cp_async_commit();
  }
}

// Block (blockIdx.x, bh) owns query rows [blockIdx.x * rows_per_block, + rows_per_block) of bh; rows_per_block
// is a multiple of 16, so a slab never straddles two blocks.
template <int D>
__global__ void __launch_bounds__(kShortThreads, kShortMinBlocks)
    short_key_attention_kernel(AttentionArgs args, AttentionVisibility vis, int64_t rows_per_block) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  using Smem = ShortSmem<D>;
  constexpr int64_t kStep = kSlabRows * kShortWarps;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  bf16* k_tile = reinterpret_cast<bf16*>(smem_raw);
  bf16* v_tile = k_tile + Smem::kKeyTile;
  bf16* buffers = v_tile + Smem::kKeyTile + warp * kSlabBuffers * Smem::kSlab;  // this warp's own

  const int64_t bh = blockIdx.y, batch = bh / args.heads;
  ShortBlock blk;
  blk.q = static_cast<const bf16*>(args.q) + args.row_base(bh, args.q_tokens_major);
  blk.o = static_cast<bf16*>(args.o) + args.row_base(bh, args.o_tokens_major);
  blk.q_stride = args.row_stride(args.q_tokens_major);
  blk.o_stride = args.row_stride(args.o_tokens_major);
  blk.nq = args.nq;
  blk.first = blockIdx.x * rows_per_block + warp * kSlabRows;
  const int64_t block_end = (blockIdx.x + int64_t{1}) * rows_per_block;
  blk.row_end = block_end < args.nq ? block_end : args.nq;
  blk.key_end = static_cast<int>(vis.visible_end(0, batch));  // no ScaleMask: the same for every row
  blk.scale_log2 = args.scale_log2;

  const bf16* k = static_cast<const bf16*>(args.k) + bh * args.nk * D;
  const bf16* v = static_cast<const bf16*>(args.v) + bh * args.nk * D;
  load_rows_async<D, kFlashKeys, kShortThreads>(k_tile, k, 0, blk.key_end, D, threadIdx.x);
  load_rows_async<D, kFlashKeys, kShortThreads>(v_tile, v, 0, blk.key_end, D, threadIdx.x);
  cp_async_commit();
  for (int i = 0; i < kSlabBuffers; ++i) {
    const int64_t row0 = blk.first + i * kStep;
    if (row0 < blk.row_end)
      load_rows_async<D, kSlabRows, 32>(buffers + i * Smem::kSlab, blk.q, row0, blk.nq, blk.q_stride, lane);
    cp_async_commit();
  }
  cp_async_wait<1>();
  __syncthreads();  // K, V and every warp's first slab are in; the warps run on their own from here

  switch ((blk.key_end + 15) / 16) {  // the same in the whole block
    case 1: walk_slabs<D, 1>(blk, k_tile, v_tile, buffers, lane); break;
    case 2: walk_slabs<D, 2>(blk, k_tile, v_tile, buffers, lane); break;
    case 3: walk_slabs<D, 3>(blk, k_tile, v_tile, buffers, lane); break;
    default: walk_slabs<D, 4>(blk, k_tile, v_tile, buffers, lane); break;
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Readies the D kernel on the current device and returns how many of its blocks the device holds at once. Done
// once per device (kernel attributes are per device; the occupancy query would cost host time on every call):
// over 48 KB of dynamic shared memory needs opting in, before the occupancy query, which reads it; and all of the
// SM's L1 / shared split goes to shared memory, so that two blocks fit (global memory is read by cp.async.cg
// only, which skips L1).
template <int D>
int64_t prepare_kernel() {
  constexpr int kCachedDevices = 64;
  static std::array<std::atomic<int>, kCachedDevices> cached{};  // 0: not ready yet
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  if (device < kCachedDevices) {
    if (const int n = cached[device].load(std::memory_order_relaxed)) return n;
  }
  const auto kernel = short_key_attention_kernel<D>;
  constexpr size_t smem = ShortSmem<D>::kBytes;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                  cudaSharedmemCarveoutMaxShared));
  int sms = 0, per_sm = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kShortThreads, smem));
  const int n = std::max(1, sms * per_sm);
  if (device < kCachedDevices) cached[device].store(n, std::memory_order_relaxed);
  return n;
}

template <int D>
void launch_short(const AttentionArgs& args, const AttentionVisibility& vis, int64_t batch_heads,
                  cudaStream_t stream) {
  const int64_t resident = prepare_kernel<D>();
  // One wave: the resident blocks split evenly over the (batch, head) pairs, rounding down (the few blocks of a
  // second wave would take as long as the first wave), each block at least one slab per warp.
  const int64_t slabs = ceil_div(args.nq, kSlabRows);
  const int64_t blocks_per_bh = std::clamp<int64_t>(resident / batch_heads, 1, ceil_div(slabs, kShortWarps));
  const int64_t rows_per_block = ceil_div(slabs, blocks_per_bh) * kSlabRows;
  const dim3 grid(static_cast<unsigned>(ceil_div(args.nq, rows_per_block)), static_cast<unsigned>(batch_heads));
  short_key_attention_kernel<D><<<grid, kShortThreads, ShortSmem<D>::kBytes, stream>>>(args, vis, rows_per_block);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

bool short_key_attention_fits(const AttentionArgs& args, const AttentionVisibility& vis, int64_t batch_heads) {
  if (vis.num_scales != 0 || (args.d != 64 && args.d != 128) || args.nq == 0) return false;
  int64_t keys = vis.nk;
  if (vis.has_kv_lengths) {
    keys = 0;
    for (int64_t b = 0; b < batch_heads / args.heads; ++b) keys = std::max<int64_t>(keys, vis.kv_lengths[b]);
    keys = std::min(keys, vis.nk);
  }
  return keys >= 1 && keys <= kFlashKeys;
}

void launch_short_key_attention(const AttentionArgs& args, const AttentionVisibility& vis, int64_t batch_heads,
                                cudaStream_t stream) {
  if (args.d == 64) launch_short<64>(args, vis, batch_heads, stream);
  else launch_short<128>(args, vis, batch_heads, stream);
}

}  // namespace sparvar::cuda

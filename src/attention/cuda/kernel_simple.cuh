// Phase-1 kernel: the reference/fallback. One warpgroup per CTA owns one 64-row query tile and walks its
// CSR row; K/V come in by cp.async through a 2-stage smem ring (the next block loads while this one
// computes), QK^T is an SS wgmma, PV an RS wgmma with P in registers. Latency is hidden by running several
// CTAs per SM rather than by warp specialisation. A q_block of 128 is two CTAs with the same list.
#pragma once

#include "attention_tile.cuh"
#include "kernel_params.cuh"
#include "output_store.cuh"

#include <cute/arch/copy_sm80.hpp>
#include <cute/atom/copy_atom.hpp>
#include <cutlass/arch/barrier.h>

namespace sparvar::attention_cuda {

template <int D, int BK>
struct SimpleKernel {
  using Cfg = TileConfig<D, BK, 2>;
  static constexpr int kThreads = 128;
  // 16-byte cp.async, a row of D elements spread over D/8 threads.
  using GmemCopy = decltype(make_tiled_copy(
      Copy_Atom<SM80_CP_ASYNC_CACHEGLOBAL<uint128_t>, Element>{},
      Layout<Shape<Int<kThreads / (D / 8)>, Int<D / 8>>, Stride<Int<D / 8>, _1>>{}, Layout<Shape<_1, _8>>{}));
  struct Smem {
    alignas(1024) Element q[Cfg::kQElems];
    alignas(1024) Element k[Cfg::kKVElems * 2];
    alignas(1024) Element v[Cfg::kKVElems * 2];
    float warp_mass[4];
  };
  static constexpr int kSmemBytes = sizeof(Smem) + 1024;  // + room to align the dynamic base
};

__device__ __forceinline__ char* align_1024(char* p) {
  return reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(p) + 1023) & ~uintptr_t{1023});
}

template <int D, int BK>
__global__ void __launch_bounds__(128) simple_block_sparse_kernel(const __grid_constant__ KernelParams p) {
  using K = SimpleKernel<D, BK>;
  using Cfg = typename K::Cfg;
  extern __shared__ char smem_raw[];
  auto& smem = *reinterpret_cast<typename K::Smem*>(align_1024(smem_raw));

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int tiles_per_qblock = p.q_block / kTileM;
  const int qtile = blockIdx.x, qb = qtile / tiles_per_qblock, qsub = qtile % tiles_per_qblock;
  const int bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int row = pattern_row(p, h, qb);
  const int start = p.row_offsets[row], count = p.row_offsets[row + 1] - start;
  const int* cols = p.col_blocks + start;

  const long long q_off = static_cast<long long>(bh) * p.nq * D;
  const long long kv_off = static_cast<long long>(bh) * p.kv_rows * D;
  Tensor mQ = make_tensor(make_gmem_ptr(reinterpret_cast<const Element*>(p.q) + q_off),
                          make_shape(p.nq, Int<D>{}), make_stride(Int<D>{}, _1{}));
  Tensor mK = make_tensor(make_gmem_ptr(reinterpret_cast<const Element*>(p.k) + kv_off),
                          make_shape(p.nk, Int<D>{}), make_stride(Int<D>{}, _1{}));
  Tensor mV = make_tensor(make_gmem_ptr(reinterpret_cast<const Element*>(p.v) + kv_off),
                          make_shape(p.nk, Int<D>{}), make_stride(Int<D>{}, _1{}));
  Tensor gQ = local_tile(mQ, Shape<Int<kTileM>, Int<D>>{}, make_coord(qtile, 0));
  Tensor gK = local_tile(mK, Shape<Int<BK>, Int<D>>{}, make_coord(_, 0));  // (BK, D, blocks)
  Tensor gV = local_tile(mV, Shape<Int<BK>, Int<D>>{}, make_coord(_, 0));

  Tensor sQ = make_tensor(make_smem_ptr(smem.q), typename Cfg::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(smem.k), typename Cfg::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(smem.v), typename Cfg::SmemLayoutV{});
  Tensor sVt = make_tensor(make_smem_ptr(smem.v), typename Cfg::SmemLayoutVt{});

  typename Cfg::MmaPV mma_pv;
  auto thr_pv = mma_pv.get_thread_slice(tid);
  Tensor tOrO = partition_fragment_C(mma_pv, Shape<Int<kTileM>, Int<D>>{});

  if (count == 0) {  // nothing listed: a defined all-zero output
    clear(tOrO);
    Tensor out = make_fragment_like<Element>(tOrO);
    CUTE_UNROLL
    for (int i = 0; i < size(out); ++i) out(i) = Element(0.f);
    store_out_tile<D>(p, bh, qtile, out, tid);
    return;
  }

  typename K::GmemCopy gmem_copy;
  auto thr_copy = gmem_copy.get_thread_slice(tid);
  Tensor tQg = thr_copy.partition_S(gQ);
  Tensor tQs = thr_copy.partition_D(sQ);
  Tensor tKg = thr_copy.partition_S(gK);  // (CPY, CPY_M, CPY_K, blocks)
  Tensor tKs = thr_copy.partition_D(sK);  // (CPY, CPY_M, CPY_K, stages)
  Tensor tVg = thr_copy.partition_S(gV);
  Tensor tVs = thr_copy.partition_D(sV);

  typename Cfg::MmaQK mma_qk;
  auto thr_qk = mma_qk.get_thread_slice(tid);
  Tensor tSrQ = thr_qk.partition_fragment_A(sQ);
  Tensor tSrK = thr_qk.partition_fragment_B(sK);   // (MMA, MMA_N, MMA_K, stages)
  Tensor tOrV = thr_pv.partition_fragment_B(sVt);  // (MMA, MMA_N, MMA_K, stages)
  Tensor tSrS = partition_fragment_C(mma_qk, Shape<Int<kTileM>, Int<BK>>{});

  // Q and block 0: K in one group, V in the next, so QK^T can start before V lands.
  copy(gmem_copy, tQg, tQs);
  copy(gmem_copy, tKg(_, _, _, cols[0]), tKs(_, _, _, 0));
  cp_async_fence();
  copy(gmem_copy, tVg(_, _, _, cols[0]), tVs(_, _, _, 0));
  cp_async_fence();

  clear(tOrO);
  RowState st;
  for (int i = 0; i < count; ++i) {
    const int stage = i & 1;
    const bool has_next = i + 1 < count;
    if (has_next) {  // stage ^1 was released by the barrier that ended iteration i-1
      const int next = cols[i + 1];
      copy(gmem_copy, tKg(_, _, _, next), tKs(_, _, _, stage ^ 1));
      cp_async_fence();
      copy(gmem_copy, tVg(_, _, _, next), tVs(_, _, _, stage ^ 1));
      cp_async_fence();
      cp_async_wait<3>();  // K_i landed (V_i, K_i+1, V_i+1 may be in flight)
    } else {
      cp_async_wait<1>();
    }
    cutlass::arch::fence_view_async_shared();  // cp.async writes -> wgmma reads (async proxy)
    __syncthreads();
    warpgroup_gemm<true, false>(mma_qk, tSrQ, tSrK(_, _, _, stage), tSrS);

    const int kb = cols[i];
    mask_keys<BK>(tSrS, p.k_valid ? p.k_valid[kb] : BK, lane);
    online_softmax<BK>(tSrS, tOrO, st, p.scale_log2);
    Tensor tOrP = make_fragment_like<Element>(tSrS);
    convert_to_bf16(tSrS, tOrP);
    Tensor tOrPa = make_tensor(tOrP.data(), accumulator_as_a_operand(tSrS.layout()));

    if (has_next) cp_async_wait<2>(); else cp_async_wait<0>();  // V_i landed
    cutlass::arch::fence_view_async_shared();
    __syncthreads();
    warpgroup_gemm<false, true>(mma_pv, tOrPa, tOrV(_, _, _, stage), tOrO);
    __syncthreads();  // everyone is done reading this stage before it is refilled
  }

  float inv_sum[2];
  finish_rows(st, inv_sum);
  store_scaled_tile<D>(p, bh, qtile, tOrO, inv_sum, tid);

  if (p.block_mass == nullptr) return;
  // Second, light pass: S again per listed block, now under the final row max and sum.
  const int q_valid = p.q_valid ? p.q_valid[qb] : p.q_block;
  const int row0 = qsub * kTileM + 16 * warp + lane / 4;
  const bool row_valid[2] = {row0 < q_valid, row0 + 8 < q_valid};
  const float inv_valid = q_valid > 0 ? 1.f / q_valid : 0.f;
  float* mass = p.block_mass + mass_base(p, b, h) + start;
  copy(gmem_copy, tKg(_, _, _, cols[0]), tKs(_, _, _, 0));
  cp_async_fence();
  for (int i = 0; i < count; ++i) {
    const int stage = i & 1;
    if (i + 1 < count) {
      copy(gmem_copy, tKg(_, _, _, cols[i + 1]), tKs(_, _, _, stage ^ 1));
      cp_async_fence();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    cutlass::arch::fence_view_async_shared();
    __syncthreads();
    warpgroup_gemm<true, false>(mma_qk, tSrQ, tSrK(_, _, _, stage), tSrS);
    mask_keys<BK>(tSrS, p.k_valid ? p.k_valid[cols[i]] : BK, lane);
    const float part = warp_sum(block_mass_partial<BK>(tSrS, st, inv_sum, row_valid, p.scale_log2));
    if (lane == 0) smem.warp_mass[warp] = part;
    __syncthreads();  // also releases this K stage
    if (tid == 0) {
      const float total = smem.warp_mass[0] + smem.warp_mass[1] + smem.warp_mass[2] + smem.warp_mass[3];
      atomicAdd(mass + i, total * inv_valid);  // a 128-row q block is two CTAs adding into one entry
    }
  }
}

}  // namespace sparvar::attention_cuda

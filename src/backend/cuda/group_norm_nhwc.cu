// group_norm_nhwc in three launches, so that batch 1 still fills the GPU (one block per (image, group), as the NCHW
// group_norm does, would be 32 blocks):
//  1. statistics: a grid of images x row chunks; each block covers every channel of its rows. Thread (slot, lane)
//     reads channel vector `lane` (16 bytes) of rows slot, slot + slots, ... and keeps an fp32 Welford (count, mean,
//     M2) per channel; the block merges them (Chan et al., in fp64) per group and writes one partial per (image,
//     chunk, group).
//  2. finalize: one block per (image, group) merges the chunks' partials (fp64) into mean and rstd and writes a
//     per-channel table: the mean as an fp32 pair (hi + lo), rstd * w, b.
//  3. apply: the same grid as 1; each thread holds its channels' table entries in registers and writes
//     act(((x - hi) - lo) * (rstd * w) + b) for its rows with 16-byte loads and stores.
// No E[x^2] - E[x]^2 anywhere. With a mean far from 0 next to the spread (100 + N(0, 1)) the fp32 rounding of the
// mean itself (an ulp of 100 is 8e-6 of the spread) would be the largest error; the fp64 merges and the hi/lo mean
// keep the fp32 output at ~1e-7 of the reference there (x - hi is exact for x near hi), and the apply subtracts the
// mean before scaling (x * scale + shift would cancel two large terms instead).
#include <algorithm>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/nhwc_kernels.h"

namespace sparvar::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kTableRows = 4;  // per image: mean hi, mean lo, scale, shift (each [channels] floats)

// Chan et al.'s merge: (n, mean, m2) absorbs (nb, mean_b, m2_b).
__device__ __forceinline__ void merge_stats(double& n, double& mean, double& m2, double nb, double mean_b,
                                            double m2_b) {
  if (nb <= 0.0) return;
  const double total = n + nb, delta = mean_b - mean, fb = nb / total;
  mean += delta * fb;
  m2 += m2_b + delta * delta * n * fb;
  n = total;
}

// A block's threads: `lanes` across a pixel's channel vectors, `slots` pixels at a time (threads past
// lanes * slots idle). More vectors than threads: one slot, each lane loops over several vectors.
struct BlockShape {
  int lanes, slots;
};
__host__ __device__ inline BlockShape block_shape(int64_t vectors) {
  const int lanes = vectors < kThreads ? static_cast<int>(vectors) : kThreads;
  return {lanes, kThreads / lanes};
}

struct ChunkGrid {
  int64_t pixels, channels, chunks, rows_per_chunk;
};

template <typename T, int V>
__global__ void __launch_bounds__(kThreads)
    gn_stats_kernel(const T* __restrict__ x, double2* __restrict__ partials, ChunkGrid g, int groups) {
  extern __shared__ float smem[];
  const int64_t vectors = g.channels / V;
  const BlockShape s = block_shape(vectors);
  const int64_t image = blockIdx.x / g.chunks, chunk = blockIdx.x % g.chunks;
  const int64_t r0 = chunk * g.rows_per_chunk, r1 = min(r0 + g.rows_per_chunk, g.pixels);
  float* mean_s = smem;                          // [slots][channels]
  float* m2_s = smem + s.slots * g.channels;     // [slots][channels]
  float* count_s = m2_s + s.slots * g.channels;  // [slots]
  const int slot = threadIdx.x / s.lanes, lane = threadIdx.x % s.lanes;
  const T* xi = x + image * g.pixels * g.channels;
  if (slot < s.slots) {
    float count = 0.0f;
    for (int64_t j = lane; j < vectors; j += s.lanes) {
      float mean[V], m2[V];
#pragma unroll
      for (int i = 0; i < V; ++i) mean[i] = m2[i] = 0.0f;
      count = 0.0f;
      for (int64_t r = r0 + slot; r < r1; r += s.slots) {
        float v[V];
        load_pack<T, V>(xi + r * g.channels + j * V, v);
        count += 1.0f;
        const float inv = 1.0f / count;
#pragma unroll
        for (int i = 0; i < V; ++i) {
          const float d = v[i] - mean[i];
          mean[i] += d * inv;
          m2[i] += d * (v[i] - mean[i]);
        }
      }
#pragma unroll
      for (int i = 0; i < V; ++i) {
        mean_s[slot * g.channels + j * V + i] = mean[i];
        m2_s[slot * g.channels + j * V + i] = m2[i];
      }
    }
    if (lane == 0) count_s[slot] = count;  // the same for every vector of the slot
  }
  __syncthreads();
  const int64_t per_group = g.channels / groups;
  for (int group = threadIdx.x; group < groups; group += blockDim.x) {
    double n = 0.0, mean = 0.0, m2 = 0.0;
    for (int sl = 0; sl < s.slots; ++sl) {
      const double count = count_s[sl];
      if (count <= 0.0) continue;
      // The slot's channels of this group share its count: their merge is the plain mean of their means, and the
      // sum of their M2 plus count times the spread of their means (Chan's formula with equal counts).
      const float* means = mean_s + sl * g.channels + group * per_group;
      const float* m2s = m2_s + sl * g.channels + group * per_group;
      double sum = 0.0;
      for (int64_t c = 0; c < per_group; ++c) sum += means[c];
      const double slot_mean = sum / static_cast<double>(per_group);
      double slot_m2 = 0.0;
      for (int64_t c = 0; c < per_group; ++c) {
        const double d = means[c] - slot_mean;
        slot_m2 += m2s[c] + count * d * d;
      }
      merge_stats(n, mean, m2, count * static_cast<double>(per_group), slot_mean, slot_m2);
    }
    partials[(image * g.chunks + chunk) * groups + group] = make_double2(mean, m2);
  }
}

// Lane 0 ends with the merge of every lane's statistics.
__device__ __forceinline__ void warp_merge_stats(double& n, double& mean, double& m2) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const double on = __shfl_down_sync(0xffffffffu, n, o);
    const double om = __shfl_down_sync(0xffffffffu, mean, o);
    const double om2 = __shfl_down_sync(0xffffffffu, m2, o);
    merge_stats(n, mean, m2, on, om, om2);
  }
}

// table [images][4][channels]: the mean of each channel's group as hi + lo (fp32 each), rstd * w, b. One block per
// (image, group): each thread merges a strided share of the chunks' partials, then the warps, then the block (a
// block per image, looping over its groups, took ~55 us per call at 1024x1024).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    gn_finalize_kernel(const double2* __restrict__ partials, float* __restrict__ table, const T* __restrict__ w,
                       const T* __restrict__ b, ChunkGrid g, int groups, float eps) {
  constexpr int kWarps = kThreads / 32;
  __shared__ double warp_n[kWarps], warp_mean[kWarps], warp_m2[kWarps];
  __shared__ float rstd_all;
  __shared__ double mean_all;
  const int64_t image = blockIdx.x / groups;
  const int group = static_cast<int>(blockIdx.x % groups);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t per_group = g.channels / groups;
  double n = 0.0, mean = 0.0, m2 = 0.0;
  for (int64_t k = threadIdx.x; k < g.chunks; k += kThreads) {
    const double rows = static_cast<double>(min(g.rows_per_chunk, g.pixels - k * g.rows_per_chunk));
    const double2 p = partials[(image * g.chunks + k) * groups + group];
    merge_stats(n, mean, m2, rows * static_cast<double>(per_group), p.x, p.y);
  }
  warp_merge_stats(n, mean, m2);
  if (lane == 0) {
    warp_n[warp] = n;
    warp_mean[warp] = mean;
    warp_m2[warp] = m2;
  }
  __syncthreads();
  if (warp == 0) {
    n = lane < kWarps ? warp_n[lane] : 0.0;
    mean = lane < kWarps ? warp_mean[lane] : 0.0;
    m2 = lane < kWarps ? warp_m2[lane] : 0.0;
    warp_merge_stats(n, mean, m2);
    if (lane == 0) {
      rstd_all = static_cast<float>(1.0 / sqrt(fmax(m2 / n, 0.0) + eps));  // biased variance, like torch
      mean_all = mean;
    }
  }
  __syncthreads();
  const float rstd = rstd_all;
  const float hi = static_cast<float>(mean_all), lo = static_cast<float>(mean_all - hi);
  float* centre_hi = table + image * kTableRows * g.channels;
  float* centre_lo = centre_hi + g.channels;
  float* scale = centre_lo + g.channels;
  float* shift = scale + g.channels;
  for (int64_t c = group * per_group + threadIdx.x; c < (group + 1) * per_group; c += kThreads) {
    centre_hi[c] = hi;
    centre_lo[c] = lo;
    scale[c] = rstd * (w ? to_float(w[c]) : 1.0f);
    shift[c] = b ? to_float(b[c]) : 0.0f;
  }
}

// x and y may be the same tensor: every element is read, then written, by the same thread.
template <typename T, int V, KernelAct kAct>
__global__ void __launch_bounds__(kThreads)
    gn_apply_kernel(const T* x, T* y, const float* __restrict__ table, ChunkGrid g) {
  const int64_t vectors = g.channels / V;
  const BlockShape s = block_shape(vectors);
  const int64_t image = blockIdx.x / g.chunks, chunk = blockIdx.x % g.chunks;
  const int64_t r0 = chunk * g.rows_per_chunk, r1 = min(r0 + g.rows_per_chunk, g.pixels);
  const int slot = threadIdx.x / s.lanes, lane = threadIdx.x % s.lanes;
  if (slot >= s.slots) return;
  const float* centre_hi = table + image * kTableRows * g.channels;
  const float* centre_lo = centre_hi + g.channels;
  const float* scale = centre_lo + g.channels;
  const float* shift = scale + g.channels;
  const int64_t base = image * g.pixels * g.channels;
  for (int64_t j = lane; j < vectors; j += s.lanes) {
    float hi[V], lo[V], sc[V], sh[V];
#pragma unroll
    for (int i = 0; i < V; ++i) {
      hi[i] = centre_hi[j * V + i];
      lo[i] = centre_lo[j * V + i];
      sc[i] = scale[j * V + i];
      sh[i] = shift[j * V + i];
    }
    for (int64_t r = r0 + slot; r < r1; r += s.slots) {
      const int64_t at = base + r * g.channels + j * V;
      float v[V];
      load_pack<T, V>(x + at, v);
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] = apply_act(((v[i] - hi[i]) - lo[i]) * sc[i] + sh[i], kAct);
      store_pack<T, V>(y + at, v);
    }
  }
}

template <typename T, int V>
void run_group_norm_nhwc(const GroupNormNhwcArgs& a, const GroupNormNhwcPlan& plan, float* table, double2* partials,
                         cudaStream_t stream) {
  const ChunkGrid g{a.pixels, a.channels, plan.chunks, plan.rows_per_chunk};
  const BlockShape s = block_shape(a.channels / V);
  const size_t smem = (2 * static_cast<size_t>(s.slots * a.channels) + s.slots) * sizeof(float);
  const auto blocks = static_cast<unsigned>(a.images * plan.chunks);
  const T* x = static_cast<const T*>(a.x);
  T* y = static_cast<T*>(a.y);
  gn_stats_kernel<T, V><<<blocks, kThreads, smem, stream>>>(x, partials, g, a.groups);
  CUDA_CHECK_LAUNCH();
  gn_finalize_kernel<T><<<static_cast<unsigned>(a.images * a.groups), kThreads, 0, stream>>>(
      partials, table, static_cast<const T*>(a.w), static_cast<const T*>(a.b), g, a.groups, a.eps);
  CUDA_CHECK_LAUNCH();
  switch (a.act) {
    case KernelAct::None:
      gn_apply_kernel<T, V, KernelAct::None><<<blocks, kThreads, 0, stream>>>(x, y, table, g);
      break;
    case KernelAct::Silu:
      gn_apply_kernel<T, V, KernelAct::Silu><<<blocks, kThreads, 0, stream>>>(x, y, table, g);
      break;
    case KernelAct::GeluTanh:
      gn_apply_kernel<T, V, KernelAct::GeluTanh><<<blocks, kThreads, 0, stream>>>(x, y, table, g);
      break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

GroupNormNhwcPlan plan_group_norm_nhwc(int64_t images, int64_t pixels, int64_t channels, int groups, int sm_count) {
  GroupNormNhwcPlan p;
  // Shared memory of the statistics kernel: 2 * slots * channels floats, at most 32 KiB up to kMaxChannels.
  p.supported = groups >= 1 && channels <= GroupNormNhwcPlan::kMaxChannels;
  if (!p.supported || images <= 0 || pixels <= 0 || channels <= 0) return p;
  // About one full wave (8 blocks of 256 threads per SM) over the batch, each block at least 16K elements so
  // that its merge stays small next to its reads.
  const int64_t target = std::max<int64_t>(1, 8 * static_cast<int64_t>(std::max(sm_count, 1)) / images);
  const int64_t min_rows = (16384 + channels - 1) / channels;
  p.rows_per_chunk = std::max((pixels + target - 1) / target, min_rows);
  p.chunks = (pixels + p.rows_per_chunk - 1) / p.rows_per_chunk;
  const size_t table_bytes = static_cast<size_t>(images * kTableRows * channels) * sizeof(float);
  p.table_offset = 0;
  p.partials_offset = (table_bytes + 255) / 256 * 256;
  p.scratch_bytes = p.partials_offset + static_cast<size_t>(images * p.chunks * groups) * sizeof(double2);
  return p;
}

void launch_group_norm_nhwc(DType dtype, const GroupNormNhwcArgs& a, const GroupNormNhwcPlan& plan, void* scratch,
                            cudaStream_t stream) {
  if (a.images == 0 || a.pixels == 0 || a.channels == 0) return;
  auto* table = reinterpret_cast<float*>(static_cast<char*>(scratch) + plan.table_offset);
  auto* partials = reinterpret_cast<double2*>(static_cast<char*>(scratch) + plan.partials_offset);
  dispatch_float(dtype, "group_norm_nhwc", [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kVec16<T>;
    if (a.channels % V == 0 && aligned_to(a.x, 16) && aligned_to(a.y, 16)) {
      run_group_norm_nhwc<T, V>(a, plan, table, partials, stream);
    } else {
      run_group_norm_nhwc<T, 1>(a, plan, table, partials, stream);
    }
  });
}

}  // namespace sparvar::cuda

// Skinny GEMM kernel (see gemm_skinny.h): y[M, N] = act(x w^T + bias) for M <= 32, bf16, fp32 accumulation.
//
// Operands of mma.sync m16n8k16: A = 16 weight rows (output features) x 16 k, B = 16 k x 8 tokens (x^T), so one
// n8 tile holds M <= 8 tokens (kTokenTiles = 2 or 4 for M <= 16 or 32). The sum over k does not care which k goes
// where as long as A and B agree: lane (g, t) loads 8 consecutive k of its weight rows g and g + 8 with one 16-byte
// load each, and 8 consecutive k of token g from shared memory, and feeds them as two k16 steps. So a warp step
// covers 32 k of 16 rows (1 KiB of weight) with 2 global loads per lane and no shuffles.
//
// The weight is streamed straight into registers (ld.global.nc, no L1 allocation, L2 evict-first, 256-byte L2
// prefetch): a round issues `unroll` steps (unroll KiB per warp) before its mma's wait for them. x is tiny and
// reused by every feature: each block copies its K slice of x into shared memory once (cp.async, after its first
// weight round is in flight) and reads it there.
//
// Work split (SkinnyConfig): a block of 8 warps owns 128 / k_warps features (8 / k_warps tiles of 16), each tile's
// k_warps warps take consecutive parts of the block's K slice; `cluster` blocks (a thread-block cluster) share the
// features and take consecutive K slices. Partial sums go to shared memory; after a cluster barrier each block
// reduces 1 / cluster of the features over every warp of every block of the cluster (distributed shared memory),
// always in the same order (deterministic), and runs the epilogue: + bias, activation, + y (residual), bf16 store.
#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <initializer_list>

#include "backend/cuda/device_math.cuh"
#include "backend/cuda/gemm_skinny.h"
#include "backend/cuda/mma_bf16.cuh"

namespace sparvar::cuda {

namespace {

namespace cg = cooperative_groups;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTileRows = 16;  // output features per warp tile: the mma's M
constexpr int kStepK = 32;     // k per warp step: 8 per lane, 4 lanes per row
constexpr int kDefaultUnroll = 4;
// The planner aims for this many warps streaming the weight per SM (2 blocks): at unroll 4, 64 KiB in flight
// per SM, ~8 MiB over the H100's 132 SMs, well above what ~1 us of loaded HBM latency at 3.35 TB/s needs.
constexpr int kTargetWarpsPerSm = 16;

struct SkinnyParams {
  const bf16* x;
  const bf16* w;
  const bf16* bias;  // null: none
  bf16* y;
  int m, n, k;
  int steps;     // ceil(k / kStepK): the K range in warp steps, split over cluster x k_warps parts
  int k_warps;   // warps per 16-feature tile (SkinnyConfig::k_warps)
  int cluster;   // blocks per cluster (SkinnyConfig::cluster)
  int x_stride;  // bf16 per shared-memory row of x
  KernelAct act;
  bool accumulate;
};

__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}

// 16 bytes of the weight, or zeros where `pred` is false (rows past n, k past the warp's part). Read once: no L1
// allocation, first out of L2, and the L2 fetches the whole 256-byte block the warp's next loads will want.
__device__ __forceinline__ uint4 load_weight(const bf16* p, bool pred, uint64_t policy) {
  uint4 v = make_uint4(0, 0, 0, 0);
  asm volatile(
      "{\n"
      "  .reg .pred p;\n"
      "  setp.ne.b32 p, %4, 0;\n"
      "  @p ld.global.nc.L1::no_allocate.L2::cache_hint.L2::256B.v4.u32 {%0, %1, %2, %3}, [%5], %6;\n"
      "}\n"
      : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
      : "r"(static_cast<int>(pred)), "l"(p), "l"(policy));
  return v;
}

// First step of K part `part` of `parts` (parts split `steps` as evenly as whole steps allow).
__device__ __forceinline__ int part_begin(int part, int parts, int steps) {
  return static_cast<int>(static_cast<int64_t>(part) * steps / parts);
}

// Output i of a block's share of the epilogue: consecutive i are consecutive features of one token, so the loads of
// y and the stores are coalesced.
struct OutputSlot {
  int token, row;    // row within the feature block
  int n;             // output feature
  int64_t y_offset;  // token * n_total + n
  bool valid;        // n < n_total
  __device__ float bias(const SkinnyParams& p) const { return p.bias ? to_float(p.bias[n]) : 0.0f; }
  __device__ float old_y(const SkinnyParams& p) const { return to_float(p.y[y_offset]); }
};

struct OutputRange {
  int first_row, rows_per_rank, row0, count, n_total;
  __device__ OutputRange(const SkinnyParams& p, int feature_block, int rows_per_block, int rank)
      : first_row(rank * (rows_per_block / p.cluster)),
        rows_per_rank(rows_per_block / p.cluster),
        row0(feature_block * rows_per_block),
        count(rows_per_block / p.cluster * p.m),
        n_total(p.n) {}
  __device__ OutputSlot slot(int i) const {
    OutputSlot o;
    o.token = i / rows_per_rank;
    o.row = first_row + (i - o.token * rows_per_rank);
    o.n = row0 + o.row;
    o.y_offset = static_cast<int64_t>(o.token) * n_total + o.n;
    o.valid = o.n < n_total;
    return o;
  }
};

// Blocks per SM the register budget must allow (65536 / (256 threads x registers)): 4 (<= 64 registers) for the
// M <= 8 kernel at unroll 4, the planner's usual choice; 3 or 2 for the others.
template <int kTokenTiles, int kUnroll>
constexpr int kMinBlocksPerSm = kUnroll == 8 ? 2 : kTokenTiles == 1 ? 4 : 3;

template <int kTokenTiles, int kUnroll>
__global__ void __launch_bounds__(kThreads, (kMinBlocksPerSm<kTokenTiles, kUnroll>))
    skinny_gemm_kernel(SkinnyParams p) {
  constexpr int kTokens = 8 * kTokenTiles;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  float* partials = reinterpret_cast<float*>(smem_raw);  // [k_warps][rows_per_block][kTokens]
  bf16* xs = reinterpret_cast<bf16*>(partials + kWarps * kTileRows * kTokens);  // [kTokens][x_stride]

  const int rank = static_cast<int>(blockIdx.x) % p.cluster;  // the block's K slice (its rank in the cluster)
  const int feature_block = static_cast<int>(blockIdx.x) / p.cluster;
  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int g = lane >> 2, t = lane & 3;  // mma fragment coordinates: row / token g, k group t
  const int row_tiles = kWarps / p.k_warps;
  const int rows_per_block = row_tiles * kTileRows;
  const int rt = warp % row_tiles, kw = warp / row_tiles;

  const int parts = p.cluster * p.k_warps;
  const int block_s0 = part_begin(rank * p.k_warps, parts, p.steps);
  const int block_s1 = part_begin((rank + 1) * p.k_warps, parts, p.steps);
  const int s0 = part_begin(rank * p.k_warps + kw, parts, p.steps);
  const int s1 = part_begin(rank * p.k_warps + kw + 1, parts, p.steps);

  // This lane's weight rows: g and g + 8 of the warp's tile (clamped in range; loads past n are predicated off).
  const int row_a = feature_block * rows_per_block + rt * kTileRows + g, row_b = row_a + 8;
  const bool valid_a = row_a < p.n, valid_b = row_b < p.n;
  const bf16* w_a = p.w + static_cast<int64_t>(min(row_a, p.n - 1)) * p.k + 8 * t;
  const bf16* w_b = p.w + static_cast<int64_t>(min(row_b, p.n - 1)) * p.k + 8 * t;
  const uint64_t policy = evict_first_policy();

  uint4 reg_a[kUnroll], reg_b[kUnroll];
  auto load_round = [&](int s) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int step = s + u;
      const bool in_k = step < s1 && step * kStepK + 8 * t < p.k;  // k % 8 == 0: a lane's 8 k are all in or out
      reg_a[u] = load_weight(w_a + step * kStepK, in_k && valid_a, policy);
      reg_b[u] = load_weight(w_b + step * kStepK, in_k && valid_b, policy);
    }
  };

  // The first weight round goes out before x is staged, so the copy below hides under its latency.
  int s = s0;
  load_round(s);

  // x[:, block K slice] -> xs; tokens >= m and k >= K are zeros (their products are discarded or add nothing).
  const int k_base = block_s0 * kStepK;
  const int chunks_per_row = (block_s1 - block_s0) * (kStepK / 8);
  for (int c = static_cast<int>(threadIdx.x); c < kTokens * chunks_per_row; c += kThreads) {
    const int token = c / chunks_per_row, col = (c - token * chunks_per_row) * 8;
    const int k = k_base + col;
    const bool inside = token < p.m && k < p.k;
    cp_async16(xs + token * p.x_stride + col, p.x + (inside ? static_cast<int64_t>(token) * p.k + k : 0),
               inside ? 16 : 0);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  float acc[kTokenTiles][4] = {};
  const bf16* x_lane = xs + g * p.x_stride + 8 * t;  // + (step - block_s0) * kStepK: token g's 8 k of this lane
  while (s < s1) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int step = s + u;
      if (step < s1) {  // warp-uniform
        const uint32_t a_lo[4] = {reg_a[u].x, reg_b[u].x, reg_a[u].y, reg_b[u].y};  // k 8t .. 8t+3
        const uint32_t a_hi[4] = {reg_a[u].z, reg_b[u].z, reg_a[u].w, reg_b[u].w};  // k 8t+4 .. 8t+7
#pragma unroll
        for (int j = 0; j < kTokenTiles; ++j) {
          const uint4 xv = *reinterpret_cast<const uint4*>(x_lane + j * 8 * p.x_stride + (step - block_s0) * kStepK);
          mma_bf16(acc[j], a_lo, xv.x, xv.y);
          mma_bf16(acc[j], a_hi, xv.z, xv.w);
        }
      }
    }
    s += kUnroll;
    if (s < s1) load_round(s);
  }

  // This block writes rows [rank, rank + 1) x rows / cluster of the feature block. Its first output's bias and old y
  // (residual) are loaded now, so their latency overlaps the barriers below (loaded before the main loop, they
  // would hold registers through it).
  const OutputRange out{p, feature_block, rows_per_block, rank};
  float first_bias = 0.0f, first_y = 0.0f;
  if (static_cast<int>(threadIdx.x) < out.count) {
    const OutputSlot o = out.slot(static_cast<int>(threadIdx.x));
    if (o.valid) {
      first_bias = o.bias(p);
      if (p.accumulate) first_y = o.old_y(p);
    }
  }

  // C fragment: rows g and g + 8 of the warp's tile, tokens 8j + 2t and 8j + 2t + 1.
  float* mine = partials + (kw * rows_per_block + rt * kTileRows) * kTokens;
#pragma unroll
  for (int j = 0; j < kTokenTiles; ++j) {
    *reinterpret_cast<float2*>(mine + g * kTokens + 8 * j + 2 * t) = make_float2(acc[j][0], acc[j][1]);
    *reinterpret_cast<float2*>(mine + (g + 8) * kTokens + 8 * j + 2 * t) = make_float2(acc[j][2], acc[j][3]);
  }
  __syncthreads();
  // The block's k_warps parts of each (row, token), summed in order into part 0 here, so the cluster step below
  // reads one value per block (remote reads cost far more than these).
  if (p.k_warps > 1) {
    for (int i = static_cast<int>(threadIdx.x); i < rows_per_block * kTokens; i += kThreads) {
      float sum = partials[i];
#pragma unroll
      for (int w = 1; w < kWarps; ++w)
        if (w < p.k_warps) sum += partials[w * rows_per_block * kTokens + i];
      partials[i] = sum;
    }
  }
  if (p.cluster > 1) cg::this_cluster().sync();  // every block's sums written and visible cluster-wide
  else if (p.k_warps > 1) __syncthreads();

  for (int i = static_cast<int>(threadIdx.x); i < out.count; i += kThreads) {
    const OutputSlot o = out.slot(i);
    if (!o.valid) continue;
    // The cluster's block sums, added in rank order (deterministic), 4 remote loads in flight at a time (all 8 at
    // once took more than the 64 registers the M <= 8 kernel is held to).
    const float* at = partials + o.row * kTokens + o.token;
    float sum = 0.0f;
#pragma unroll 1
    for (int base = 0; base < p.cluster; base += 4) {
      float part[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int src = base + j;
        part[j] = src >= p.cluster ? 0.0f : p.cluster > 1 ? *cg::this_cluster().map_shared_rank(at, src) : *at;
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) sum += part[j];
    }
    const bool first = i == static_cast<int>(threadIdx.x);
    sum += first ? first_bias : o.bias(p);
    sum = apply_act(sum, p.act);
    if (p.accumulate) sum += first ? first_y : o.old_y(p);
    p.y[o.y_offset] = from_float<bf16>(sum);
  }
  if (p.cluster > 1) cg::this_cluster().sync();  // no block leaves while another still reads its shared memory
}

using SkinnyKernel = void (*)(SkinnyParams);

template <int kUnroll>
SkinnyKernel kernel_with_tiles(int token_tiles) {
  switch (token_tiles) {
    case 1: return skinny_gemm_kernel<1, kUnroll>;
    case 2: return skinny_gemm_kernel<2, kUnroll>;
    default: return skinny_gemm_kernel<4, kUnroll>;
  }
}

SkinnyKernel kernel_for(int token_tiles, int unroll) {
  return unroll == 8 ? kernel_with_tiles<8>(token_tiles) : kernel_with_tiles<4>(token_tiles);
}

int token_tiles_for(int64_t m) { return m <= 8 ? 1 : m <= 16 ? 2 : 4; }

bool is_split(int v) { return v == 1 || v == 2 || v == 4 || v == 8; }

// Sizes of one launch; false when the configuration is not one the kernel supports.
struct SkinnyLayout {
  int steps = 0, x_stride = 0;
  int64_t feature_blocks = 0;
  size_t smem = 0;
};

bool layout_for(int64_t m, int64_t n, int64_t k, const SkinnyConfig& c, SkinnyLayout& out) {
  if (!is_split(c.k_warps) || !is_split(c.cluster) || (c.unroll != 4 && c.unroll != 8)) return false;
  if (m < 1 || m > kSkinnyMaxRows || n < 1 || k < 8 || k % 8 != 0 || n >= (int64_t{1} << 31) ||
      k >= (int64_t{1} << 31))
    return false;
  const int tokens = 8 * token_tiles_for(m);
  out.steps = static_cast<int>((k + kStepK - 1) / kStepK);
  const int rows_per_block = kWarps / c.k_warps * kTileRows;
  out.feature_blocks = (n + rows_per_block - 1) / rows_per_block;
  // A block's slice is at most ceil(steps / cluster) steps. Shared rows of x 64 bytes past a multiple of 128, so the
  // two tokens each quarter-warp reads with 16-byte loads fall in different banks.
  const int block_steps = (out.steps + c.cluster - 1) / c.cluster;
  out.x_stride = block_steps * kStepK + (block_steps % 2 == 0 ? kStepK : 0);
  out.smem = sizeof(float) * kWarps * kTileRows * tokens + sizeof(bf16) * tokens * static_cast<size_t>(out.x_stride);
  return true;
}

cudaLaunchAttribute cluster_attribute(int cluster) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = static_cast<unsigned>(cluster);
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  return attr;
}

// Blocks of this kernel, shared memory and cluster size the device runs at once; 0 where the query refuses the
// configuration (then it is not used: a linear call must not fail over a configuration it could skip).
int64_t resident_blocks(SkinnyKernel kernel, size_t smem, int cluster, int sms) {
  if (cluster == 1) {
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return static_cast<int64_t>(per_sm) * sms;
  }
  cudaLaunchAttribute attr = cluster_attribute(cluster);
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(cluster) * 64u);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = smem;
  config.attrs = &attr;
  config.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return static_cast<int64_t>(clusters) * cluster;
}

// What the kernel needs of the pointers and the epilogue: 16-byte rows of x and w for its vector loads (k % 8 is
// checked with the shape), element-aligned y and bias, and no activation in the residual mode.
bool operands_fit(const SkinnyGemmArgs& a) {
  return aligned_to(a.x, 16) && aligned_to(a.w, 16) && aligned_to(a.y, 2) && (!a.bias || aligned_to(a.bias, 2)) &&
         !(a.accumulate && a.act != KernelAct::None);
}

// Queues one launch of a checked configuration.
void enqueue(const SkinnyGemmArgs& a, const SkinnyConfig& c, const SkinnyLayout& l, cudaStream_t stream) {
  const SkinnyParams p{.x = static_cast<const bf16*>(a.x),
                       .w = static_cast<const bf16*>(a.w),
                       .bias = static_cast<const bf16*>(a.bias),
                       .y = static_cast<bf16*>(a.y),
                       .m = static_cast<int>(a.m),
                       .n = static_cast<int>(a.n),
                       .k = static_cast<int>(a.k),
                       .steps = l.steps,
                       .k_warps = c.k_warps,
                       .cluster = c.cluster,
                       .x_stride = l.x_stride,
                       .act = a.act,
                       .accumulate = a.accumulate};

  cudaLaunchAttribute attr = cluster_attribute(c.cluster);
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(l.feature_blocks * c.cluster));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = l.smem;
  config.stream = stream;
  config.attrs = &attr;
  config.numAttrs = c.cluster > 1 ? 1 : 0;
  CUDA_CHECK(cudaLaunchKernelEx(&config, kernel_for(token_tiles_for(a.m), c.unroll), p));
  CUDA_CHECK_LAUNCH();
}

}  // namespace

SkinnyGemm::SkinnyGemm(int device, int max_rows) : max_rows_(std::clamp(max_rows, 0, kSkinnyMaxRows)) {
  CUDA_CHECK(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device));
  int optin = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  // Every kernel may use the device's opt-in maximum of dynamic shared memory (less any static); the planner and
  // the occupancy queries decide what is worth using.
  smem_limit_ = static_cast<size_t>(optin);
  for (int tiles : {1, 2, 4})
    for (int unroll : {4, 8}) {
      cudaFuncAttributes attr{};
      CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel_for(tiles, unroll)));
      smem_limit_ = std::min(smem_limit_, static_cast<size_t>(optin) - attr.sharedSizeBytes);
    }
  for (int tiles : {1, 2, 4})
    for (int unroll : {4, 8})
      CUDA_CHECK(cudaFuncSetAttribute(kernel_for(tiles, unroll), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem_limit_)));
}

bool SkinnyGemm::plan(int64_t m, int64_t n, int64_t k, SkinnyConfig& config) {
  const auto key = std::tuple(static_cast<int64_t>(token_tiles_for(m)), n, k);
  if (auto it = plans_.find(key); it != plans_.end()) {
    config = it->second.second;
    return it->second.first;
  }
  // Among the splits that fit shared memory, give every warp at least one k step and run in one wave: the most
  // warps streaming the weight up to kTargetWarpsPerSm per SM, then the fewest k_warps (each block copies x for
  // 128 / k_warps features: fewer copies of x through L2), then the smallest cluster (less to reduce).
  const int64_t target = static_cast<int64_t>(kTargetWarpsPerSm) * sms_;
  const int64_t tiles16 = (n + kTileRows - 1) / kTileRows;
  bool found = false, one_wave_found = false;
  SkinnyConfig best;
  int64_t best_score = -1;
  for (int k_warps : {1, 2, 4, 8}) {
    for (int cluster : {1, 2, 4, 8}) {
      const SkinnyConfig c{k_warps, cluster, kDefaultUnroll};
      SkinnyLayout l;
      if (!layout_for(m, n, k, c, l) || l.smem > smem_limit_) continue;
      if (k_warps * cluster > 1 && l.steps < k_warps * cluster) continue;
      const int64_t blocks = l.feature_blocks * cluster;
      const int64_t resident = resident_blocks(kernel_for(token_tiles_for(m), c.unroll), l.smem, cluster, sms_);
      if (resident == 0) continue;
      const bool one_wave = blocks <= resident;
      if (!one_wave) {
        // Only the unsplit launch may take several waves (n too large for one): a split gains nothing there.
        if (k_warps == 1 && cluster == 1 && !found) {
          best = c;
          found = true;
        }
        continue;
      }
      const int64_t score = std::min(tiles16 * k_warps * cluster, target);
      if (!one_wave_found || score > best_score) {  // ties keep the earlier: smaller k_warps, then cluster
        best = c;
        best_score = score;
        found = one_wave_found = true;
      }
    }
  }
  plans_[key] = {found, best};
  config = best;
  return found;
}

bool SkinnyGemm::launch(const SkinnyGemmArgs& a, const SkinnyConfig& c, cudaStream_t stream) {
  SkinnyLayout l;
  if (!operands_fit(a) || !layout_for(a.m, a.n, a.k, c, l) || l.smem > smem_limit_) return false;
  if (resident_blocks(kernel_for(token_tiles_for(a.m), c.unroll), l.smem, c.cluster, sms_) == 0) return false;
  enqueue(a, c, l, stream);
  return true;
}

bool SkinnyGemm::run(const SkinnyGemmArgs& a, cudaStream_t stream) {
  if (a.m < 1 || a.m > max_rows_ || !operands_fit(a)) return false;
  SkinnyConfig c;
  SkinnyLayout l;
  if (!plan(a.m, a.n, a.k, c) || !layout_for(a.m, a.n, a.k, c, l)) return false;  // a plan was checked to run
  enqueue(a, c, l, stream);
  return true;
}

}  // namespace sparvar::cuda

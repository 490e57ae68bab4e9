// Skinny GEMM: bf16 linear layers with a few rows (M <= 32), y[M, N] = act(x[M, K] w[N, K]^T + bias), or
// y += x w^T + bias in place (linear_residual). At Infinity's first scales (M = 2 to 32 tokens against weights of
// 8 to 100 MB) such a product only streams the weight from HBM, and cuBLASLt reached 2.0-2.7 TB/s of the H100's
// 3.35 there. This kernel (gemm_skinny.cu) puts the weight in the tensor cores' A operand and x^T in B, so M <= 8
// is one n8 tile, and keeps 16-byte weight loads in flight from every SM.
//
// Off by default: measured slower than our tuned cuBLASLt (H100, session 6). bench/skinny_bench, one block's four
// 8B products: 136.0 vs 133.3 us at M = 2, 141.1 vs 131.5 at M = 8, 167.9 vs 130.8 at M = 16 (the kernel streams
// only ~2.3-2.5 TB/s, the 3 TB/s it was built for not reached; it wins only on fc2). Inside the 8B pipeline (ncu of
// the 2x2 scale) its products summed to 7.13 ms against cuBLASLt's 6.48 ms. Kept, tested, as the base for the next
// attempt (deeper loads in flight, programmatic dependent launch so the weight stream starts under the previous
// kernel's tail).
//
// CudaBackend::linear / linear_residual (gemm_cublaslt.cpp) call run() first for BF16 when it is on and fall back to
// cuBLASLt when it declines. Environment (read when a backend is made; see docs/backend.md):
//   SPARVAR_SKINNY_GEMM=1        on; 0 or unset: off (everything on cuBLASLt)
//   SPARVAR_SKINNY_GEMM_ROWS=N   with it on, the largest M taken, 1 to 32 (default kSkinnyDefaultRows)
// Kept free of fmt (nvcc's C++20 front end cannot compile fmt 9): the .cpp side parses the environment.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "backend/cuda/kernels.h"

namespace sparvar::cuda {

constexpr int kSkinnyMaxRows = 32;      // 4 n8 tiles of tokens
constexpr int kSkinnyDefaultRows = 16;  // the brief's target (M <= 8) and stretch (M <= 16); 32 is opt-in

// One product. bf16 device pointers; x [m, k] and w [n, k] row-major and 16-byte aligned, k % 8 == 0; bias [n] or
// null; y [m, n]. accumulate: y += x w^T + bias (act must be None), else y = act(x w^T + bias).
struct SkinnyGemmArgs {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;
  void* y = nullptr;
  int64_t m = 0, n = 0, k = 0;
  KernelAct act = KernelAct::None;
  bool accumulate = false;
};

// How a launch divides the work. A block of 8 warps owns 128 / k_warps output features; its k_warps warps per
// 16-feature tile each take a part of the block's K slice; the `cluster` blocks of a thread-block cluster share
// one feature tile and each take a K slice, their partial sums reduced through distributed shared memory.
struct SkinnyConfig {
  int k_warps = 1;  // 1, 2, 4 or 8
  int cluster = 1;  // 1, 2, 4 or 8
  int unroll = 4;   // 32-wide k steps each warp loads per round: 4 or 8 (bytes in flight per warp: unroll KiB)
};

class SkinnyGemm {
 public:
  // max_rows: the largest M run() takes (0: none). Reads the device's SM count and sets the kernels' shared
  // memory limit.
  SkinnyGemm(int device, int max_rows);
  SkinnyGemm(const SkinnyGemm&) = delete;
  SkinnyGemm& operator=(const SkinnyGemm&) = delete;

  int max_rows() const { return max_rows_; }

  // Runs the product on `stream` with the cached plan for its shape and returns true, or returns false having
  // done nothing (m over max_rows, a pointer not 16-byte aligned, k % 8 != 0, or no configuration fits).
  bool run(const SkinnyGemmArgs& args, cudaStream_t stream);

  // The configuration run() uses for this shape, and whether there is one (benchmarks print it).
  bool plan(int64_t m, int64_t n, int64_t k, SkinnyConfig& config);
  // Launches with an explicit configuration (benchmarks sweep them). False, doing nothing, if the arguments or
  // the configuration do not fit (alignment, k % 8, m > kSkinnyMaxRows, invalid sizes, shared memory).
  bool launch(const SkinnyGemmArgs& args, const SkinnyConfig& config, cudaStream_t stream);

 private:
  int sms_ = 0;
  int max_rows_ = 0;
  size_t smem_limit_ = 0;  // dynamic shared memory a block may use (the device's opt-in maximum, capped)
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::pair<bool, SkinnyConfig>> plans_;  // (m tiles, n, k)
};

// SPARVAR_SKINNY_GEMM and SPARVAR_SKINNY_GEMM_ROWS as SkinnyGemm's max_rows (gemm_skinny.cpp); throws on a bad value.
int skinny_rows_from_env();

}  // namespace sparvar::cuda

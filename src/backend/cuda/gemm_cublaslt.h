// cuBLASLt matrix products in cuBLAS's column-major terms, with the plan (descriptors + chosen algorithm)
// cached per shape and the workspace allocated once. Used by linear and by conv2d's im2col GEMMs.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <tuple>

#include "backend/cuda/device_buffer.h"
#include "core/dtype.h"

namespace sparvar::cuda {

enum class GemmEpilogue { None, Bias, Gelu, GeluBias };

// D[m, n] (column-major, ldc) = op(A)[m, k] op(B)[k, n] (+ bias[m], GELU), `batch` times with the strides.
// A, B, D share `dtype` (F32 or BF16), as does bias (D: F32 with f32_out); accumulation and compute are fp32.
// Residual products (linear_residual): D = op(A) op(B) + C (+ bias), C laid out like D (C = D in place).
struct GemmShape {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  DType dtype = DType::BF16;
  GemmEpilogue epilogue = GemmEpilogue::None;
  uint32_t alignment = 16;  // the smallest alignment (bytes, <= 16) of A, B, D and bias
  bool a_is_weight = false;  // A is a layer's weight (linear): decides whether a few-FLOP product is tuned
  bool accumulate = false;  // beta = 1: C is read (GemmOperands::c)
  bool f32_out = false;  // D (and C) in F32 while A and B are `dtype` (scores kept in fp32 for a softmax)

  auto key() const {
    return std::tuple(trans_a, trans_b, m, n, k, lda, ldb, ldc, batch, stride_a, stride_b, stride_c,
                      static_cast<int>(dtype), static_cast<int>(epilogue), alignment, a_is_weight, accumulate,
                      f32_out);
  }
};

// The pointers of one product (device memory). c: read when the shape accumulates, may be d itself (in place).
struct GemmOperands {
  const void* a = nullptr;
  const void* b = nullptr;
  const void* c = nullptr;
  void* d = nullptr;
  const void* bias = nullptr;
  // Where tuning writes D when d == c: timing an in-place accumulation would add the product into C once per run.
  // Laid out like d.
  void* tune_d = nullptr;
};

class GemmRunner {
 public:
  explicit GemmRunner(cudaStream_t stream);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // Runs the product. Returns false (doing nothing) when cuBLASLt has no algorithm for this epilogue or residual
  // mode, so the caller can compose it from a plain product and its own passes. Decided once per shape.
  bool run(const GemmShape& shape, const GemmOperands& operands);
  bool run(const GemmShape& shape, const void* a, const void* b, void* d, const void* bias) {
    return run(shape, GemmOperands{a, b, nullptr, d, bias});
  }

 private:
  struct Plan;
  Plan* plan_for(const GemmShape& shape);
  void tune(Plan& plan, const GemmShape& shape, const GemmOperands& operands);
  cublasStatus_t matmul(const Plan& plan, const GemmShape& shape, const GemmOperands& operands, void* d,
                        const cublasLtMatmulAlgo_t& algo);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer workspace_;
  DeviceBuffer flush_;  // rewritten between tuning runs to evict the L2 (allocated at the first tuning)
  bool autotune_ = true;
  int candidates_ = 0;  // heuristic results asked for and timed: kCandidates or SPARVAR_GEMM_CANDIDATES
  bool fuse_residuals_ = true;  // SPARVAR_FUSED_RESIDUAL=0: residual products are refused (composed by the caller)
  std::map<decltype(GemmShape{}.key()), std::unique_ptr<Plan>> plans_;
};

// Smallest power-of-two alignment (<= 16 bytes) of a pointer.
inline uint32_t pointer_alignment(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 16;
  while (a > 1 && v % a != 0) a >>= 1;
  return a;
}

}  // namespace sparvar::cuda

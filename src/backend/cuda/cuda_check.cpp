#include "backend/cuda/cuda_check.h"

#include "core/error.h"

namespace sparvar::cuda {

void fail_cuda(cudaError_t status, const char* expr, const char* file, int line) {
  fail("CUDA error at {}:{}: {} failed: {} ({})", file, line, expr, cudaGetErrorString(status),
       cudaGetErrorName(status));
}

void fail_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
  fail("cuBLAS error at {}:{}: {} failed: {} ({})", file, line, expr, cublasLtGetStatusString(status),
       cublasLtGetStatusName(status));
}

void fail_dtype(const char* op, DType dtype) {
  fail("{}: dtype {} is not supported by the cuda backend (f32 or bf16)", op, dtype_name(dtype));
}

}  // namespace sparvar::cuda

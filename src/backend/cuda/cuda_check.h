// Error checking for every CUDA runtime, cuBLASLt and kernel-launch call: a failure becomes a sparvar::Error
// naming the call site (file:line), the failed expression and the library's own error string.
// This header stays free of fmt (nvcc's C++20 front end cannot compile fmt 9): the throwing functions are
// defined in cuda_check.cpp, so .cu files can use the macros too.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/dtype.h"

namespace sparvar::cuda {

[[noreturn]] void fail_cuda(cudaError_t status, const char* expr, const char* file, int line);
[[noreturn]] void fail_cublas(cublasStatus_t status, const char* expr, const char* file, int line);
// A launcher was handed a dtype its kernels are not instantiated for.
[[noreturn]] void fail_dtype(const char* op, DType dtype);

}  // namespace sparvar::cuda

#define CUDA_CHECK(expr)                                                                  \
  do {                                                                                    \
    const cudaError_t sparvar_status_ = (expr);                                           \
    if (sparvar_status_ != cudaSuccess)                                                   \
      ::sparvar::cuda::fail_cuda(sparvar_status_, #expr, __FILE__, __LINE__);             \
  } while (0)

#define CUBLAS_CHECK(expr)                                                                \
  do {                                                                                    \
    const cublasStatus_t sparvar_status_ = (expr);                                        \
    if (sparvar_status_ != CUBLAS_STATUS_SUCCESS)                                         \
      ::sparvar::cuda::fail_cublas(sparvar_status_, #expr, __FILE__, __LINE__);           \
  } while (0)

// After every kernel launch: a bad configuration (too many threads, too much shared memory) shows up here,
// at the launch that caused it, not at some later synchronisation.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

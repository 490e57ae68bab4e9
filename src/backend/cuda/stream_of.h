// The CUDA stream a CUDA backend queues its work on, for code outside the backend that launches its own
// kernels in order with the backend's (the sparse attention runner). Header-only on purpose: it needs
// nothing but CudaBackend's inline accessor.
#pragma once

#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace sparvar::cuda {

inline cudaStream_t cuda_stream(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  SPARVAR_CHECK(cuda != nullptr, "{} is not a CUDA backend (no stream)", backend.name());
  return cuda->stream();
}

}  // namespace sparvar::cuda

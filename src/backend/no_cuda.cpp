#include "backend/backend.h"
#include "backend/trace.h"

namespace sparvar {

std::unique_ptr<Backend> make_cuda_backend(int) {
  fail("this sparvar was built without CUDA (configure with nvcc available and -DSPARVAR_CUDA=ON)");
}

bool cuda_available() { return false; }

GpuMemoryStats gpu_memory_stats() { return {}; }
void reset_gpu_memory_peak() {}
void trace_push(const char*) {}
void trace_pop() {}

}  // namespace sparvar

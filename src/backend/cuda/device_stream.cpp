#include "backend/cuda/device_stream.h"

#include <cstdlib>
#include <string_view>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/device_pool.h"
#include "core/error.h"

namespace sparvar::cuda {

AllocMode alloc_mode_from_env() {
  const char* env = std::getenv("SPARVAR_CUDA_ALLOC");
  if (!env || !*env) return AllocMode::Pool;
  const std::string_view s(env);
  if (s == "pool") return AllocMode::Pool;
  if (s == "malloc") return AllocMode::Malloc;
  fail("SPARVAR_CUDA_ALLOC={}: expected pool or malloc", s);
}

DeviceStream::DeviceStream(int device, AllocMode mode) : device_(device), mode_(mode) {
  if (mode_ == AllocMode::Pool) {
    pool_ = device_pool(device);
    if (!pool_) mode_ = AllocMode::Malloc;
  }
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

DeviceStream::~DeviceStream() {
  (void)cudaSetDevice(device_);
  flush_deferred();
  // Returns at once; the stream's queued work (frees included) still runs.
  (void)cudaStreamDestroy(stream_);
  (void)cudaGetLastError();
}

bool DeviceStream::capturing() const noexcept {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream_, &status) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return status != cudaStreamCaptureStatusNone;
}

DeviceBlock DeviceStream::allocate(size_t bytes, std::string_view what) {
  if (bytes == 0) return {};
  const bool capture = capturing();
  if (!capture) flush_deferred();
  if (mode_ == AllocMode::Malloc || capture) return {device_malloc(bytes, what), bytes, false};
  void* p = nullptr;
  cudaError_t status = cudaMallocFromPoolAsync(&p, bytes, pool_, stream_);
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    release_cached_memory();
    status = cudaMallocFromPoolAsync(&p, bytes, pool_, stream_);
  }
  if (status != cudaSuccess) fail_out_of_memory(bytes, what, status);
  count_allocation(bytes);
  return {p, bytes, true};
}

void DeviceStream::release(const DeviceBlock& block) noexcept {
  if (!block.ptr) return;
  if (capturing()) {
    try {
      const std::lock_guard lock(mutex_);
      deferred_.push_back(block);
    } catch (...) {
      return;  // no memory to remember it: leaking the block is safe, freeing it now is not
    }
    scratch_generation().fetch_add(1);
    return;
  }
  flush_deferred();
  free_now(block);
}

void DeviceStream::flush_deferred() noexcept {
  std::vector<DeviceBlock> blocks;
  {
    const std::lock_guard lock(mutex_);
    if (deferred_.empty() || capturing()) return;
    blocks.swap(deferred_);
  }
  for (const DeviceBlock& b : blocks) free_now(b);
}

void DeviceStream::free_now(const DeviceBlock& block) noexcept {
  if (!block.pooled) {
    device_free(block.ptr, block.bytes);
    return;
  }
  if (cudaFreeAsync(block.ptr, stream_) != cudaSuccess) (void)cudaGetLastError();
  count_release(block.bytes);
}

}  // namespace sparvar::cuda

// The stream-ordered memory pool CUDA backend tensors come from (device_stream.h): one per device, made on first
// use and kept for the life of the process, with its release threshold at the maximum so that freed memory stays
// cached for the next allocation instead of going back to the driver at every synchronisation.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace sparvar::cuda {

// The device's pool; nullptr when the device has no stream-ordered allocator (the caller then uses cudaMalloc).
cudaMemPool_t device_pool(int device);

// Bytes the pools hold from the driver (blocks in use and cached free ones): now, and at most since the last
// reset_pool_peaks() (never below now).
struct PoolReserved {
  size_t current = 0, peak = 0;
};
PoolReserved pool_reserved();
void reset_pool_peaks();

// Gives the pools' cached free memory back to the driver, so that a failed allocation can be tried once more.
// Waits for the device first (a free still queued on a stream is not yet trimmable), except while a capture runs:
// synchronising then would break the capture.
void release_cached_memory();

// Backend::record brackets each stream capture with this, for release_cached_memory().
class CaptureScope {
 public:
  CaptureScope();
  ~CaptureScope();
  CaptureScope(const CaptureScope&) = delete;
  CaptureScope& operator=(const CaptureScope&) = delete;
};

}  // namespace sparvar::cuda

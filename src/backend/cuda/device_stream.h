// The stream a CudaBackend queues its work on, and the allocator of the backend's tensors (host code: it uses fmt).
//
// Pool mode (the default): blocks come from the device's stream-ordered pool (device_pool.h) in this stream's order
// and go back with cudaFreeAsync on it, so neither waits for the device, and freed memory stays cached for the next
// allocation. cudaFree, which the old path called for every tensor, synchronises the device: the BSQ-VAE decoder,
// which allocates per op, spent half its time waiting on it. Malloc mode (SPARVAR_CUDA_ALLOC=malloc): cudaMalloc
// and cudaFree, as before the pool.
//
// A block is valid for work on this stream only (the pool may hand out memory whose previous owner's work is still
// queued here): the backend's ops, cuBLASLt and cuDNN all run on it. Another stream must synchronise with this one.
//
// Lifetime: the backend and every block allocated through it share this object (shared_ptr), so a tensor that
// outlives its backend is still freed in order on this stream; the stream goes with the last of them.
//
// Graph capture (Backend::record): inside a capture, cudaMallocFromPoolAsync would become a graph allocation node
// (memory allocated at each launch, with the graph's lifetime rules) and cudaFreeAsync of a block allocated outside
// the graph is an error. While this stream is capturing, allocations therefore use cudaMalloc (what every
// allocation did before the pool) and frees wait until the capture has ended. A free during a capture also makes
// every recording invalid (scratch_generation): the work just recorded may read the freed block.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <mutex>
#include <string_view>
#include <vector>

namespace sparvar::cuda {

enum class AllocMode { Pool, Malloc };
// SPARVAR_CUDA_ALLOC: "pool" (default) or "malloc"; anything else is an Error.
AllocMode alloc_mode_from_env();

struct DeviceBlock {
  void* ptr = nullptr;
  size_t bytes = 0;
  bool pooled = false;  // from the pool (cudaFreeAsync), else cudaMalloc (cudaFree)
};

class DeviceStream {
 public:
  // A new non-blocking stream on `device` (the current device).
  DeviceStream(int device, AllocMode mode);
  ~DeviceStream();
  DeviceStream(const DeviceStream&) = delete;
  DeviceStream& operator=(const DeviceStream&) = delete;

  cudaStream_t get() const { return stream_; }
  // Pool, or Malloc when asked for or when the device has no stream-ordered allocator.
  AllocMode mode() const { return mode_; }

  // `bytes` (0: a null block) for `what` (named in the out-of-memory error). When the pool is out of memory, its
  // cached blocks go back to the driver and the allocation is tried once more.
  DeviceBlock allocate(size_t bytes, std::string_view what);
  // Gives the block back after the work already queued on the stream (see above for captures). Never throws.
  void release(const DeviceBlock& block) noexcept;
  // Frees the blocks released during a capture, once it has ended (record() calls it; allocate and release too).
  void flush_deferred() noexcept;

 private:
  bool capturing() const noexcept;
  void free_now(const DeviceBlock& block) noexcept;

  int device_;
  AllocMode mode_;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
  std::mutex mutex_;
  std::vector<DeviceBlock> deferred_;
};

}  // namespace sparvar::cuda

// RAII ownership of one cudaMalloc'ed block (host code only: it uses fmt), and the allocation accounting every
// device allocation goes through (device_stream.h too). Allocation failure is a sparvar::Error saying how much was
// asked for, for what, and how much the device has free, so an out-of-memory report is actionable.
//
// DeviceBuffer stays on cudaMalloc: it holds long-lived scratch (workspaces, im2col columns) that is grown rarely
// and may be grown inside a graph capture, where a stream-ordered allocation would become a graph memory node.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_pool.h"
#include "core/error.h"

namespace sparvar::cuda {

// Bytes handed out (device_malloc and the backend's pool) now and at most since the last reset (gpu_memory_stats()
// reports them): what the engine itself holds, comparable to torch.cuda.max_memory_allocated; the CUDA context and
// the pool's cached free memory are not counted.
struct AllocationCounters {
  std::atomic<size_t> current{0}, peak{0};
};
inline AllocationCounters& allocation_counters() {
  static AllocationCounters counters;
  return counters;
}
inline void count_allocation(size_t bytes) {
  AllocationCounters& c = allocation_counters();
  const size_t now = c.current.fetch_add(bytes) + bytes;
  size_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
  }
}
inline void count_release(size_t bytes) { allocation_counters().current.fetch_sub(bytes); }

// The error of a failed allocation (status: what the allocator returned).
[[noreturn]] inline void fail_out_of_memory(size_t bytes, std::string_view what, cudaError_t status) {
  (void)cudaGetLastError();  // clear the allocation error before asking for the numbers
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
  fail("out of GPU memory allocating {} bytes for {} (free {} of {}): {}", bytes, what, free_bytes, total_bytes,
       cudaGetErrorString(status));
}

// Counts the times a DeviceBuffer let go of a block it held to take another (reserve() growing, a move over a
// held block): the scratch of the backend and of the kernel libraries grows that way. A recorded CUDA graph
// holds raw pointers into such scratch, so it is only valid while this count is what it was at its capture. A tensor
// freed during a capture counts too (device_stream.h): the recorded work may read it.
inline std::atomic<uint64_t>& scratch_generation() {
  static std::atomic<uint64_t> generation{0};
  return generation;
}

// cudaMalloc with the error message above; bytes == 0 returns nullptr. Out of memory while the pools cache free
// blocks: they give them back and the allocation is tried once more.
inline void* device_malloc(size_t bytes, std::string_view what) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  cudaError_t status = cudaMalloc(&p, bytes);
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    release_cached_memory();
    status = cudaMalloc(&p, bytes);
  }
  if (status != cudaSuccess) fail_out_of_memory(bytes, what, status);
  count_allocation(bytes);
  return p;
}

// cudaFree never throws here: it runs in destructors. It waits for work in flight on the device.
// bytes: what device_malloc was asked for (for the counters).
inline void device_free(void* p, size_t bytes) {
  if (!p) return;
  if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
  count_release(bytes);
}

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, std::string_view what) : data_(device_malloc(bytes, what)), bytes_(bytes) {}
  ~DeviceBuffer() { device_free(data_, bytes_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      if (data_) scratch_generation().fetch_add(1);
      device_free(data_, bytes_);
      data_ = std::exchange(other.data_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }

  // Grows (never shrinks) to at least `bytes`; the old contents are dropped.
  void reserve(size_t bytes, std::string_view what) {
    if (bytes <= bytes_) return;
    *this = DeviceBuffer(bytes, what);
  }

  void* data() const { return data_; }
  template <typename T> T* as() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace sparvar::cuda

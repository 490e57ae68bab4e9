// RAII ownership of one cudaMalloc'ed block (host code only: it uses fmt). Allocation failure is a sparvar::Error
// saying how much was asked for, for what, and how much the device has free, so an out-of-memory report is actionable.
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace sparvar::cuda {

// cudaMalloc with the error message above; bytes == 0 returns nullptr.
inline void* device_malloc(size_t bytes, std::string_view what) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free allocation error before asking for the numbers
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
    fail("out of GPU memory allocating {} bytes for {} (free {} of {}): {}", bytes, what, free_bytes, total_bytes,
         cudaGetErrorString(status));
  }
  return p;
}

// cudaFree never throws here: it runs in destructors. It waits for work in flight on the device.
inline void device_free(void* p) {
  if (p && cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
}

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, std::string_view what) : data_(device_malloc(bytes, what)), bytes_(bytes) {}
  ~DeviceBuffer() { device_free(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      device_free(data_);
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

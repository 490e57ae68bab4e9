#include "backend/cuda/device_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>
#include <vector>

#include "backend/cuda/cuda_check.h"

namespace sparvar::cuda {

namespace {

struct Pools {
  std::mutex mutex;
  std::vector<cudaMemPool_t> by_device;  // nullptr: not made yet, or the device has none
};

// Never destroyed: tensors may be freed into a pool during static destruction, after any destructor of ours ran.
// The driver reclaims the pools with the process.
Pools& pools() {
  static Pools* p = new Pools;
  return *p;
}

std::atomic<int> active_captures{0};

uint64_t pool_attribute(cudaMemPool_t pool, cudaMemPoolAttr attr) {
  uint64_t value = 0;
  if (cudaMemPoolGetAttribute(pool, attr, &value) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return value;
}

std::vector<cudaMemPool_t> made_pools() {
  Pools& p = pools();
  const std::lock_guard lock(p.mutex);
  std::vector<cudaMemPool_t> out;
  for (cudaMemPool_t pool : p.by_device)
    if (pool) out.push_back(pool);
  return out;
}

}  // namespace

cudaMemPool_t device_pool(int device) {
  Pools& p = pools();
  const std::lock_guard lock(p.mutex);
  if (static_cast<size_t>(device) >= p.by_device.size()) p.by_device.resize(static_cast<size_t>(device) + 1, nullptr);
  cudaMemPool_t& pool = p.by_device[static_cast<size_t>(device)];
  if (pool) return pool;
  int supported = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device));
  if (!supported) return nullptr;
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
  uint64_t keep_all = std::numeric_limits<uint64_t>::max();
  CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
  return pool;
}

PoolReserved pool_reserved() {
  PoolReserved r;
  for (cudaMemPool_t pool : made_pools()) {
    const uint64_t now = pool_attribute(pool, cudaMemPoolAttrReservedMemCurrent);
    r.current += now;
    r.peak += std::max(now, pool_attribute(pool, cudaMemPoolAttrReservedMemHigh));
  }
  return r;
}

void reset_pool_peaks() {
  for (cudaMemPool_t pool : made_pools()) {
    uint64_t zero = 0;  // the only value the high-water mark can be set to
    if (cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &zero) != cudaSuccess) (void)cudaGetLastError();
  }
}

void release_cached_memory() {
  const std::vector<cudaMemPool_t> all = made_pools();
  if (all.empty()) return;
  if (active_captures.load() == 0 && cudaDeviceSynchronize() != cudaSuccess) (void)cudaGetLastError();
  for (cudaMemPool_t pool : all)
    if (cudaMemPoolTrimTo(pool, 0) != cudaSuccess) (void)cudaGetLastError();
}

CaptureScope::CaptureScope() { active_captures.fetch_add(1); }
CaptureScope::~CaptureScope() { active_captures.fetch_sub(1); }

}  // namespace sparvar::cuda

// The dynamic tile schedule's counters (tile_schedule.cuh): one per (device, stream), from a fixed array in device
// memory that starts zeroed and that each launch leaves zeroed, so nothing is allocated, set or freed per launch
// (a launch inside a graph capture needs no extra node either).
#include <cstdlib>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>

#include "kernel_launch.h"

namespace sparvar::attention_cuda {

namespace {

constexpr int kCounters = 64;
__device__ int g_tile_counters[kCounters];

// SPARVAR_BSA_SCHEDULE: "dynamic" (default) or "static" (the round-robin order, for A/B runs).
bool dynamic_schedule() {
  static const bool dynamic = [] {
    const char* env = std::getenv("SPARVAR_BSA_SCHEDULE");
    return !env || std::string_view(env) != "static";
  }();
  return dynamic;
}

}  // namespace

cudaError_t stream_tile_counter(cudaStream_t stream, int** counter) {
  *counter = nullptr;
  if (!dynamic_schedule()) return cudaSuccess;
  int device = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status != cudaSuccess) return status;
  static std::mutex mutex;
  static std::map<std::pair<int, cudaStream_t>, int*> counters;  // (device, stream) -> its counter
  static std::map<int, int> used;                                // device -> counters handed out
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(device, stream);
  auto it = counters.find(key);
  if (it == counters.end()) {  // the symbol's address is looked up once per stream, not at every launch
    int& n = used[device];
    if (n == kCounters) return cudaSuccess;  // more streams than counters: this one keeps the static order
    void* base = nullptr;
    status = cudaGetSymbolAddress(&base, g_tile_counters);
    if (status != cudaSuccess) return status;
    it = counters.emplace(key, static_cast<int*>(base) + n++).first;
  }
  *counter = it->second;
  return cudaSuccess;
}

}  // namespace sparvar::attention_cuda

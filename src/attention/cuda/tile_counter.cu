// The dynamic tile schedule's counters (tile_schedule.cuh): one per (device, stream), from a fixed array in device
// memory that starts zeroed and that each launch leaves zeroed, so nothing is allocated, set or freed per launch
// (a launch inside a graph capture needs no extra node either). The shared kernel's split tail (split_tail.h) keeps its
// arrival counters the same way, and its workspace per stream.
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
__device__ int g_split_arrivals[kCounters][2 * kMaxSplitTailTiles];  // split_tail_store.cuh: zero between launches

// SPARVAR_BSA_SCHEDULE: "dynamic" (default) or "static" (the round-robin order, for A/B runs).
bool dynamic_schedule() {
  static const bool dynamic = [] {
    const char* env = std::getenv("SPARVAR_BSA_SCHEDULE");
    return !env || std::string_view(env) != "static";
  }();
  return dynamic;
}

// What a (device, stream) uses: its counters in the arrays above (symbol addresses looked up once, not per launch)
// and its split workspace.
struct StreamState {
  int* tile_counter = nullptr;
  int* split_arrivals = nullptr;
  float* split_workspace = nullptr;
  bool workspace_tried = false;
};

std::mutex g_mutex;
std::map<std::pair<int, cudaStream_t>, StreamState> g_streams;
std::map<int, int> g_used;  // device -> counter indices handed out

// (device, stream)'s state, or null when all counters are taken. Caller holds g_mutex.
cudaError_t stream_state(cudaStream_t stream, StreamState** state) {
  *state = nullptr;
  int device = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status != cudaSuccess) return status;
  const auto key = std::make_pair(device, stream);
  auto it = g_streams.find(key);
  if (it == g_streams.end()) {
    int& n = g_used[device];
    if (n == kCounters) return cudaSuccess;
    void* counters = nullptr;
    void* arrivals = nullptr;
    if ((status = cudaGetSymbolAddress(&counters, g_tile_counters)) != cudaSuccess ||
        (status = cudaGetSymbolAddress(&arrivals, g_split_arrivals)) != cudaSuccess)
      return status;
    StreamState s;
    s.tile_counter = static_cast<int*>(counters) + n;
    s.split_arrivals = static_cast<int*>(arrivals) + static_cast<size_t>(n) * 2 * kMaxSplitTailTiles;
    ++n;
    it = g_streams.emplace(key, s).first;
  }
  *state = &it->second;
  return cudaSuccess;
}

}  // namespace

cudaError_t stream_tile_counter(cudaStream_t stream, int** counter) {
  *counter = nullptr;
  if (!dynamic_schedule()) return cudaSuccess;
  const std::lock_guard<std::mutex> lock(g_mutex);
  StreamState* state = nullptr;
  const cudaError_t status = stream_state(stream, &state);
  if (state) *counter = state->tile_counter;  // else more streams than counters: this one keeps the static order
  return status;
}

cudaError_t stream_split_workspace(cudaStream_t stream, size_t bytes, int** arrivals, float** workspace) {
  *arrivals = nullptr;
  *workspace = nullptr;
  const std::lock_guard<std::mutex> lock(g_mutex);
  StreamState* state = nullptr;
  cudaError_t status = stream_state(stream, &state);
  if (status != cudaSuccess || !state) return status;
  if (!state->workspace_tried) {
    // Allocated once per stream at the size the launcher asks for its largest case, never freed (a launch in flight
    // or a captured graph may use it). Inside a stream capture cudaMalloc is allowed only in relaxed mode.
    state->workspace_tried = true;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    if ((status = cudaThreadExchangeStreamCaptureMode(&mode)) != cudaSuccess) return status;
    void* ptr = nullptr;
    const cudaError_t alloc = cudaMalloc(&ptr, bytes);
    status = cudaThreadExchangeStreamCaptureMode(&mode);
    if (alloc == cudaErrorMemoryAllocation) (void)cudaGetLastError();  // no room: this stream runs unsplit
    else if (alloc != cudaSuccess) return alloc;
    if (status != cudaSuccess) return status;
    state->split_workspace = static_cast<float*>(ptr);
  }
  if (state->split_workspace) {
    *arrivals = state->split_arrivals;
    *workspace = state->split_workspace;
  }
  return cudaSuccess;
}

}  // namespace sparvar::attention_cuda

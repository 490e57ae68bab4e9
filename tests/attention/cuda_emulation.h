// Runs simple CUDA kernels of this repository on the CPU, to test their logic where there is no GPU: one
// std::thread per CUDA thread, blocks one after another, warp collectives (shuffles, ballot, any, syncwarp)
// and __syncthreads through barriers. Supports what the CS4A builder's kernels use and nothing more: full-warp
// masks, dynamic shared memory declared `extern __shared__` (the includer defines the arrays, in the kernels'
// namespace, before including them), global atomics on unsigned int. Not for wgmma / TMA / async copies.
// Include it before the kernel source; test-only (it defines the reserved __names CUDA uses).
#pragma once

#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __shared__
#define __align__(n)

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};

namespace sparvar::cuda_emulation {

struct Warp {
  explicit Warp(int lanes) : barrier(lanes) {}
  std::barrier<> barrier;
  uint64_t slot[32] = {};
};

struct ThreadState {
  Warp* warp = nullptr;
  std::barrier<>* block = nullptr;
  int lane = 0;
};
inline thread_local ThreadState self;

// Every lane publishes a value, then reads lane src's.
template <typename T>
T exchange(T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  self.warp->slot[self.lane] = bits;
  self.warp->barrier.arrive_and_wait();
  T out;
  const uint64_t got = self.warp->slot[src];
  std::memcpy(&out, &got, sizeof(T));
  self.warp->barrier.arrive_and_wait();  // nobody overwrites a slot before every lane has read
  return out;
}

}  // namespace sparvar::cuda_emulation

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline void __syncwarp(unsigned = 0xffffffffu) { sparvar::cuda_emulation::self.warp->barrier.arrive_and_wait(); }
inline void __syncthreads() { sparvar::cuda_emulation::self.block->arrive_and_wait(); }

template <typename T>
T __shfl_sync(unsigned, T v, int src) { return sparvar::cuda_emulation::exchange(v, src & 31); }
template <typename T>
T __shfl_xor_sync(unsigned, T v, int mask) {
  return sparvar::cuda_emulation::exchange(v, sparvar::cuda_emulation::self.lane ^ mask);
}
template <typename T>
T __shfl_up_sync(unsigned, T v, unsigned delta) {
  const int lane = sparvar::cuda_emulation::self.lane;
  return sparvar::cuda_emulation::exchange(v, lane >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : lane);
}
inline unsigned __ballot_sync(unsigned, int predicate) {
  using namespace sparvar::cuda_emulation;
  self.warp->slot[self.lane] = predicate != 0;
  self.warp->barrier.arrive_and_wait();
  unsigned out = 0;
  for (int l = 0; l < 32; ++l) out |= static_cast<unsigned>(self.warp->slot[l] != 0) << l;
  self.warp->barrier.arrive_and_wait();
  return out;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }

inline unsigned atomicAdd(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_add(v); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
template <typename T>
T min(T a, T b) { return b < a ? b : a; }

namespace sparvar::cuda_emulation {

// Runs kernel() as grid x block CUDA threads (block size a multiple of 32). Blocks run one after another, so
// dynamic shared memory (a global array the includer defined) is each block's own while it runs.
template <typename Kernel>
void launch(dim3 grid, dim3 block, Kernel&& kernel) {
  gridDim = grid;
  blockDim = block;
  const int threads = static_cast<int>(block.x * block.y * block.z);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> block_barrier(threads);
        std::vector<std::unique_ptr<Warp>> warps;
        for (int w = 0; w < (threads + 31) / 32; ++w) warps.push_back(std::make_unique<Warp>(std::min(32, threads - 32 * w)));
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
          pool.emplace_back([&, t] {
            threadIdx = {static_cast<unsigned>(t) % block.x, static_cast<unsigned>(t) / block.x % block.y,
                         static_cast<unsigned>(t) / (block.x * block.y)};
            blockIdx = {bx, by, bz};
            self = {warps[static_cast<size_t>(t / 32)].get(), &block_barrier, t % 32};
            kernel();
            // An exited thread no longer holds up barriers (whole warps exit together in our kernels).
            self.warp->barrier.arrive_and_drop();
            block_barrier.arrive_and_drop();
          });
        }
        for (std::thread& th : pool) th.join();
      }
}

}  // namespace sparvar::cuda_emulation

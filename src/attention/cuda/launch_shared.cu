// Instantiations and launch of the phase-5 (shared: one K/V stream per 128-row tile) kernel: one list per tile
// (q_block 128), or two 64-row query blocks' lists walked as one stream (q_block 64, k_block 64: pair_lists.cuh).
#include "kernel_shared.cuh"
#include "pipelined_launch.cuh"

namespace sparvar::attention_cuda {

namespace {
template <int D, bool kPairs>
cudaError_t launch(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream, int* counter) {
  using K = SharedKernel<D, kPairs>;
  return launch_persistent(shared_block_sparse_kernel<D, kPairs>, lane_params<D>(shape, p, K::kTileRows, counter),
                           K::kSmemBytes, 1, stream);
}
}  // namespace

// Pairs of 64-row query blocks: the producer stages both lists (each at most nk / 64 entries) in shared memory.
int shared_pair_max_k_blocks(const LaunchShape& shape) {
  return ((shape.head_dim == 128 ? SharedKernel<128, true>::kListCap : SharedKernel<64, true>::kListCap) - 3) / 2;
}

bool shared_supports(const LaunchShape& shape, const KernelParams& p) {
  if (p.block_mass || (shape.head_dim != 64 && shape.head_dim != 128)) return false;
  if (p.q_block == 128) return true;
  return p.q_block == 64 && p.k_block == 64 && p.nk / 64 <= shared_pair_max_k_blocks(shape);
}

cudaError_t launch_shared(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  int* counter = nullptr;  // the dynamic tile schedule's (tile_schedule.cuh)
  const cudaError_t status = stream_tile_counter(stream, &counter);
  if (status != cudaSuccess) return status;
  const bool pairs = p.q_block == 64;
  if (shape.head_dim == 128)
    return pairs ? launch<128, true>(shape, p, stream, counter) : launch<128, false>(shape, p, stream, counter);
  return pairs ? launch<64, true>(shape, p, stream, counter) : launch<64, false>(shape, p, stream, counter);
}

}  // namespace sparvar::attention_cuda

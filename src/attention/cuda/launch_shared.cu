// Instantiations and launch of the phase-5 (shared: one K/V stream per 128-row query block) kernel.
#include "kernel_shared.cuh"
#include "pipelined_launch.cuh"

namespace sparvar::attention_cuda {

namespace {
template <int D>
cudaError_t launch(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream, int* counter) {
  using K = SharedKernel<D>;
  return launch_persistent(shared_block_sparse_kernel<D>, lane_params<D>(shape, p, K::kTileRows, counter),
                           K::kSmemBytes, 1, stream);
}
}  // namespace

bool shared_supports(const LaunchShape& shape, const KernelParams& p) {
  return p.q_block == 128 && !p.block_mass && (shape.head_dim == 64 || shape.head_dim == 128);
}

cudaError_t launch_shared(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  int* counter = nullptr;  // the dynamic tile schedule's (tile_schedule.cuh)
  const cudaError_t status = stream_tile_counter(stream, &counter);
  if (status != cudaSuccess) return status;
  if (shape.head_dim == 128) return launch<128>(shape, p, stream, counter);
  return launch<64>(shape, p, stream, counter);
}

}  // namespace sparvar::attention_cuda

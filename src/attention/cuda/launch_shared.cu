// Instantiations and launch of the phase-5 (shared: one K/V stream per 128-row tile) kernel: one list per tile
// (q_block 128), or two 64-row query blocks' lists walked as one stream (q_block 64, k_block 64: pair_lists.cuh).
#include "kernel_shared.cuh"

namespace sparvar::attention_cuda {

// The split instantiations are compiled in launch_shared_split.cu (in parallel with this file).
extern template cudaError_t run_shared_kernel<64, false, true>(const SharedKernel<64, false>::Params&, cudaStream_t);
extern template cudaError_t run_shared_kernel<64, true, true>(const SharedKernel<64, true>::Params&, cudaStream_t);
extern template cudaError_t run_shared_kernel<128, false, true>(const SharedKernel<128, false>::Params&, cudaStream_t);
extern template cudaError_t run_shared_kernel<128, true, true>(const SharedKernel<128, true>::Params&, cudaStream_t);

namespace {

// Splits the last partial wave where plan_split_tail says it pays (split_tail.h); needs the dynamic schedule (its
// per-stream state) and the stream's workspace, else the launch runs unsplit.
cudaError_t plan_split(const LaunchShape& shape, KernelParams& p, int num_tiles, cudaStream_t stream, int* counter) {
  if (shape.split_never || (!shape.uniform_steps && !shape.split_always)) return cudaSuccess;
  // Forced (tests): a launch that cannot split fails rather than passing unsplit.
  const cudaError_t unavailable = shape.split_always ? cudaErrorNotSupported : cudaSuccess;
  if (!counter) return unavailable;
  const int ctas = max_ctas();
  const int steps = shape.uniform_steps > 0 ? shape.uniform_steps : (p.nk + 127) / 128;
  const int min_range_steps = p.q_block == 64 ? 12 : 0;  // pairs plan each part's lists (split_tail.h)
  const SplitTail split =
      plan_split_tail(num_tiles, ctas, steps, shape.split_always, kMaxSplitTailTiles, min_range_steps);
  if (split.tiles == 0) return cudaSuccess;
  // Sized once for the largest case: at most ranges + 2 tiles <= 3 CTAs slots, of 128 rows of D = 128 and an lse.
  int device = 0, sms = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status == cudaSuccess) status = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (status != cudaSuccess) return status;
  const size_t max_slots = 3 * static_cast<size_t>(std::max(sms, ctas));
  const size_t o_floats = max_slots * kSplitRows * 128;
  int* arrivals = nullptr;
  float* workspace = nullptr;
  status = stream_split_workspace(stream, (o_floats + max_slots * kSplitRows) * sizeof(float), &arrivals, &workspace);
  if (status != cudaSuccess) return status;
  if (!workspace) return unavailable;
  if (static_cast<size_t>(split.tiles) * split.max_parts > max_slots) return cudaSuccess;  // cannot happen (see above)
  p.split = split;
  p.split_o = workspace;
  p.split_lse = workspace + o_floats;
  p.split_arrivals = arrivals;
  return cudaSuccess;
}

template <int D, bool kPairs>
cudaError_t launch(const LaunchShape& shape, KernelParams p, cudaStream_t stream, int* counter) {
  using K = SharedKernel<D, kPairs>;
  auto prm = lane_params<D>(shape, p, K::kTileRows, counter);
  const cudaError_t status = plan_split(shape, prm.p, prm.num_tiles, stream, counter);
  if (status != cudaSuccess) return status;
  prm.num_items = split_work_items(prm.p.split, prm.num_tiles);
  return prm.p.split.tiles ? run_shared_kernel<D, kPairs, true>(prm, stream)
                           : run_shared_kernel<D, kPairs, false>(prm, stream);
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

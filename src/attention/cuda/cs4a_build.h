// Kernels of the GPU CS4A builder (host class: cs4a_device.h): from the decision scale's block mass to every
// later scale's CSR pattern, on one stream, with no host sync. Two launches:
//  1. select + expand, one warp per (head, decision query block): batch average of the mass, the row's
//     selection by cs4a_rule.h (per candidate: rank and heavier mass among the row's candidates), the row's
//     expansion to each later scale (OR of the plan's cover words) and the length of every mapped row;
//  2. write, one CTA per (head, later scale): row offsets (sum of the earlier heads' lengths + a scan of its
//     own) and the columns (bit scan of expansion | own window, ascending by construction).
// Every pointer is a device pointer; sizes are the plan's (cs4a_plan.h). fmt-free (nvcc cannot compile fmt):
// the launch returns a cudaError_t, and the host class checks arguments before it. Kernels: cs4a_kernels.cuh.
#pragma once

#include <cuda_runtime.h>

#include "cs4a_build_args.h"

namespace sparvar::attn_cuda {

cudaError_t launch_cs4a_build(const Cs4aBuildArgs& args, cudaStream_t stream);

}  // namespace sparvar::attn_cuda

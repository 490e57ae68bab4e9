// The launchers of the channels-last image kernels (group_norm_nhwc.cu, upsample_nhwc.cu, conv2d_nhwc.cu), called
// by the op entry points of the same names after validation. Free of fmt and core/tensor.h like kernels.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/cuda/kernels.h"
#include "core/dtype.h"

namespace sparvar::cuda {

// ---- group_norm_nhwc.cu
// Three launches: partial statistics of every (image, row chunk, group), a tiny merge of the chunks into a
// per-(image, channel) table (mean, rstd * w, b), and the vectorised normalise + affine + activation pass.
// The plan fixes the chunking (enough blocks to fill the GPU at batch 1) and the scratch it needs.
struct GroupNormNhwcPlan {
  bool supported = false;         // false: more channels than a block's shared memory holds (> kMaxChannels)
  int64_t chunks = 0;             // row chunks per image: the grid is images x chunks blocks
  int64_t rows_per_chunk = 0;
  size_t table_offset = 0, partials_offset = 0, scratch_bytes = 0;  // in the scratch buffer
  static constexpr int64_t kMaxChannels = 4096;
};
GroupNormNhwcPlan plan_group_norm_nhwc(int64_t images, int64_t pixels, int64_t channels, int groups, int sm_count);

struct GroupNormNhwcArgs {
  const void* x = nullptr;
  void* y = nullptr;                              // may be x
  const void* w = nullptr;                        // [channels] or null
  const void* b = nullptr;                        // [channels] or null
  int64_t images = 0, pixels = 0, channels = 0;   // x, y [images, pixels, channels]
  int groups = 1;
  float eps = 0.0f;
  KernelAct act = KernelAct::None;
};
void launch_group_norm_nhwc(DType dtype, const GroupNormNhwcArgs& args, const GroupNormNhwcPlan& plan, void* scratch,
                            cudaStream_t stream);

// ---- upsample_nhwc.cu
// y [images, fy * h, fx * w, channels] = x [images, h, w, channels] repeated; raw elements of esize bytes.
void launch_upsample_nearest_nhwc(size_t esize, const void* x, void* y, int64_t images, int64_t h, int64_t w,
                                  int64_t channels, int64_t fy, int64_t fx, cudaStream_t stream);

// ---- conv2d_nhwc.cu
struct ConvNhwcGeometry {
  int64_t n, h, w, cin, kh, kw, stride, pad, out_h, out_w;
};
// cols[r][k] for output pixels p0 + r (r < rows, counted over all images), k = (ky * kw + kx) * cin + ci: the
// input tap or 0 in the padding.
void launch_im2col_nhwc(DType dtype, const void* x, void* cols, const ConvNhwcGeometry& g, int64_t p0, int64_t rows,
                        cudaStream_t stream);
// y[p, c] += bias[c] + residual[p, c] over [pixels, channels]; bias or residual may be null (not both).
void launch_conv_epilogue_nhwc(DType dtype, void* y, const void* bias, const void* residual, int64_t pixels,
                               int64_t channels, cudaStream_t stream);

}  // namespace sparvar::cuda

// Entry point of group_norm_nhwc (kernels in group_norm_nhwc.cu): validation, the chunking plan, the scratch for the
// partial statistics (grown once, kept like conv2d's columns), three launches.
#include <algorithm>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/nhwc_kernels.h"
#include "backend/cuda/op_helpers.h"
#include "backend/nhwc_checks.h"

namespace sparvar::cuda {

void CudaBackend::group_norm_nhwc(const Tensor& x, int groups, const Tensor* w, const Tensor* b, float eps,
                                  Activation act, Tensor& y) {
  constexpr const char* op = "group_norm_nhwc";
  check_compute(x, op, "x");
  if (w) check_compute_like(*w, x, op, "w");
  if (b) check_compute_like(*b, x, op, "b");
  check_compute_like(y, x, op, "output");
  check_group_norm_nhwc(x, groups, w, b, y, op);
  SPARVAR_CHECK(act == Activation::None || act == Activation::GeluTanh || act == Activation::Silu,
                "{}: unknown activation {}", op, static_cast<int>(act));
  if (x.numel() == 0) return;
  const int64_t N = x.dim(0), pixels = x.dim(1) * x.dim(2), C = x.dim(3);
  const GroupNormNhwcPlan plan = plan_group_norm_nhwc(N, pixels, C, groups, props_.multiProcessorCount);
  if (!plan.supported) {  // more channels than the statistics kernel's shared memory holds: the permute default
    Backend::group_norm_nhwc(x, groups, w, b, eps, act, y);
    return;
  }
  const int64_t blocks = N * std::max<int64_t>(plan.chunks, groups);  // statistics / finalize grids
  SPARVAR_CHECK(blocks <= 0x7fffffff, "{}: x {} needs {} blocks, too many for one launch", op, shape_string(x.shape()),
                blocks);
  make_current();
  norm_scratch_.reserve(plan.scratch_bytes, "group_norm_nhwc statistics");
  GroupNormNhwcArgs args;
  args.x = x.data();
  args.y = y.data();
  args.w = w ? w->data() : nullptr;
  args.b = b ? b->data() : nullptr;
  args.images = N;
  args.pixels = pixels;
  args.channels = C;
  args.groups = groups;
  args.eps = eps;
  args.act = kernel_act(act);
  launch_group_norm_nhwc(x.dtype(), args, plan, norm_scratch_.data(), stream_);
}

}  // namespace sparvar::cuda

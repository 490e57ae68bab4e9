// Entry point of qkv_to_attention (kernel in qkv_attention.cu): validation, then one launch.
#include <cstdint>
#include <initializer_list>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/qkv_checks.h"

namespace sparvar::cuda {

void CudaBackend::qkv_to_attention(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin,
                                   float eps, int64_t offset, Tensor& q, Tensor& k_cache, Tensor& v_cache) {
  constexpr const char* op = "qkv_to_attention";
  check_compute(qkv, op, "qkv");
  check_compute_like(k_cache, qkv, op, "k_cache");
  const QkvDims dims = check_qkv_dims(qkv, k_cache, op);
  const int64_t B = dims.B, N = dims.N, H = dims.H, D = dims.D, capacity = dims.capacity;
  check_shaped_like(v_cache, qkv, k_cache.shape(), op, "v_cache");
  check_shaped_like(q, qkv, {B, H, N, D}, op, "q");
  check_table(cos, {N, D / 2}, op, "cos");
  check_table(sin, {N, D / 2}, op, "sin");
  if (q_scale) check_shaped_like(*q_scale, qkv, {H}, op, "q_scale");
  check_qkv_targets(qkv, q_scale, cos, sin, offset, dims, q, k_cache, v_cache, op);
  const size_t pair_bytes = 2 * dtype_size(qkv.dtype());
  for (const Tensor* t : std::initializer_list<const Tensor*>{&qkv, &q, &k_cache, &v_cache})
    SPARVAR_CHECK(reinterpret_cast<uintptr_t>(t->data()) % pair_bytes == 0,
                  "{}: {} must be aligned to whole (x0, x1) pairs ({} bytes)", op, t->describe(), pair_bytes);
  make_current();
  const QkvArgs args{B, N, H, D, capacity, offset, eps};
  launch_qkv_to_attention(qkv.dtype(), qkv.data(), q_scale ? q_scale->data() : nullptr,
                          static_cast<const float*>(cos.data()), static_cast<const float*>(sin.data()), q.data(),
                          k_cache.data(), v_cache.data(), args, stream_);
}

}  // namespace sparvar::cuda

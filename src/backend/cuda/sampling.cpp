// Entry points of sample_bits and bits_to_codes (kernels in sampling.cu): validation, then one launch.
#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

namespace sparvar::cuda {

namespace {
// t is defined, on the cuda backend, of dtype `dtype` and shape `shape`.
void check_exact(const Tensor& t, DType dtype, const Shape& shape, const char* op, const char* arg) {
  SPARVAR_CHECK(t.defined(), "{}: {} is missing (undefined tensor)", op, arg);
  SPARVAR_CHECK(t.device() == Device::CUDA, "{}: {} {} is not on the cuda backend", op, arg, t.describe());
  SPARVAR_CHECK(t.dtype() == dtype, "{}: {} {} must be {}", op, arg, t.describe(), dtype_name(dtype));
  SPARVAR_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {}", op, arg, shape_string(t.shape()),
                shape_string(shape));
}
}  // namespace

void CudaBackend::sample_bits(const Tensor& raw, const BitSampling& p, const Tensor* uniforms, Tensor* bits,
                              Tensor* logits) {
  constexpr const char* op = "sample_bits";
  check_compute(raw, op, "raw logits");
  SPARVAR_CHECK(raw.ndim() == 3 && raw.dim(2) % 2 == 0, "{}: raw logits must be [R, N, 2 * D], got {}", op,
                shape_string(raw.shape()));
  SPARVAR_CHECK(bits || logits, "{}: nothing to write (bits and logits are both null)", op);
  const int64_t R = raw.dim(0), N = raw.dim(1), D = raw.dim(2) / 2;
  const int64_t B = bits ? bits->dim(0) : logits->dim(0);
  SPARVAR_CHECK(B >= 1 && (R == B || R == 2 * B),
                "{}: raw logits {} must have {} rows (or {} with CFG) for an output batch of {}", op,
                shape_string(raw.shape()), B, 2 * B, B);
  if (bits) {
    check_exact(*bits, DType::U8, {B, N, D}, op, "bits");
    check_disjoint(raw, *bits, op, "raw logits");
  }
  if (logits) {
    check_exact(*logits, DType::F32, {B, N, 2 * D}, op, "logits");
    check_disjoint(raw, *logits, op, "raw logits");
  }
  if (uniforms) {
    check_exact(*uniforms, DType::F32, {B, N, D}, op, "uniforms");
    if (bits) check_disjoint(*uniforms, *bits, op, "uniforms");
    if (logits) check_disjoint(*uniforms, *logits, op, "uniforms");
  }
  if (bits && logits) check_disjoint(*bits, *logits, op, "bits");
  const uint64_t* seed_ptr = nullptr;
  if (p.seed_tensor) {
    check_exact(*p.seed_tensor, DType::U8, {8}, op, "seed tensor");
    SPARVAR_CHECK(pointer_alignment(p.seed_tensor->data()) >= 8, "{}: seed tensor {} must be 8-byte aligned", op,
                  p.seed_tensor->describe());
    seed_ptr = static_cast<const uint64_t*>(p.seed_tensor->data());
  }
  make_current();
  const SampleArgs args{B, N, D, R == 2 * B, p.tau, p.cfg, p.top_k, p.top_p, p.seed, p.stream, seed_ptr};
  launch_sample_bits(raw.dtype(), raw.data(), uniforms ? static_cast<const float*>(uniforms->data()) : nullptr,
                     bits ? static_cast<uint8_t*>(bits->data()) : nullptr,
                     logits ? static_cast<float*>(logits->data()) : nullptr, args, stream_);
}

void CudaBackend::bits_to_codes(const Tensor& bits, int patch, float zero, float one, Tensor& codes) {
  constexpr const char* op = "bits_to_codes";
  SPARVAR_CHECK(patch == 1 || patch == 2, "{}: patch must be 1 or 2, got {}", op, patch);
  SPARVAR_CHECK(codes.defined() && codes.ndim() == 4 && codes.dim(2) % patch == 0 && codes.dim(3) % patch == 0,
                "{}: codes must be [B, d, h * {}, w * {}], got {}", op, patch, patch,
                codes.defined() ? shape_string(codes.shape()) : std::string("nothing"));
  check_exact(codes, DType::F32, codes.shape(), op, "codes");
  const int64_t B = codes.dim(0), d = codes.dim(1), h = codes.dim(2) / patch, w = codes.dim(3) / patch;
  check_exact(bits, DType::U8, {B, h * w, d * patch * patch}, op, "bits");
  check_disjoint(bits, codes, op, "bits");
  make_current();
  launch_bits_to_codes(static_cast<const uint8_t*>(bits.data()), static_cast<float*>(codes.data()), B, d, h, w,
                       patch, zero, one, stream_);
}

}  // namespace sparvar::cuda

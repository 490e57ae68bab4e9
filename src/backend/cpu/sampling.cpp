// Infinity's bitwise sampling and bits -> codes on the CPU backend. The per-bit arithmetic is
// core/bit_sampling.h's (shared with the host sampler and the CUDA kernel); this file is built with
// -ffp-contract=off so the compiler cannot fuse its products and sums differently from the GPU.
#include <algorithm>
#include <cstring>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "core/bit_sampling.h"

namespace sparvar::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;

void check_u8(const Tensor& t, const Shape& shape, std::string_view op, std::string_view arg) {
  SPARVAR_CHECK(t.defined(), "{}: {} is missing (undefined tensor)", op, arg);
  SPARVAR_CHECK(t.device() == Device::CPU, "{}: {} {} is not on the cpu backend", op, arg, t.describe());
  SPARVAR_CHECK(t.dtype() == DType::U8, "{}: {} {} must be u8", op, arg, t.describe());
  SPARVAR_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {}", op, arg, shape_string(t.shape()),
                shape_string(shape));
}
}  // namespace

void CpuBackend::sample_bits(const Tensor& raw, const BitSampling& p, const Tensor* uniforms, Tensor* bits,
                             Tensor* logits) {
  constexpr std::string_view op = "sample_bits";
  check_f32(raw, op, "raw logits");
  SPARVAR_CHECK(raw.ndim() == 3 && raw.dim(2) % 2 == 0, "sample_bits: raw logits must be [R, N, 2 * D], got {}",
                shape_string(raw.shape()));
  SPARVAR_CHECK(bits || logits, "sample_bits: nothing to write (bits and logits are both null)");
  const int64_t R = raw.dim(0), N = raw.dim(1), D = raw.dim(2) / 2;
  const int64_t B = bits ? bits->dim(0) : logits->dim(0);
  SPARVAR_CHECK(B >= 1 && (R == B || R == 2 * B),
                "sample_bits: raw logits {} must have {} rows (or {} with CFG) for an output batch of {}",
                shape_string(raw.shape()), B, 2 * B, B);
  if (bits) {
    check_u8(*bits, {B, N, D}, op, "bits");
    check_disjoint(raw, *bits, op, "raw logits");
  }
  if (logits) {
    check_f32_shape(*logits, {B, N, 2 * D}, op, "logits");
    check_disjoint(raw, *logits, op, "raw logits");
  }
  if (uniforms) {
    check_f32_shape(*uniforms, {B, N, D}, op, "uniforms");
    if (bits) check_disjoint(*uniforms, *bits, op, "uniforms");
    if (logits) check_disjoint(*uniforms, *logits, op, "uniforms");
  }
  if (bits && logits) check_disjoint(*bits, *logits, op, "bits");
  uint64_t seed = p.seed;
  if (p.seed_tensor) {
    check_u8(*p.seed_tensor, {8}, op, "seed tensor");
    std::memcpy(&seed, p.seed_tensor->data(), sizeof(seed));  // the 8 bytes as one uint64_t, as the GPU reads them
  }
  const bool guided = R == 2 * B;
  const int64_t count = B * N * D;
  const float* pr = raw.data_as<float>();
  const float* pu = uniforms ? uniforms->data_as<float>() : nullptr;
  uint8_t* pb = bits ? bits->data_as<uint8_t>() : nullptr;
  float* pl = logits ? logits->data_as<float>() : nullptr;
  pool_.parallel_for(0, count, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      // Element i = (b, n, j) of [B, N, D]; its logit pair sits at 2i of [B, N, 2D], the unconditional one
      // count * 2 further.
      float l[2];
      for (int k = 0; k < 2; ++k) {
        const float cond = pr[2 * i + k];
        l[k] = guided ? bitsample::guided_logit(cond, pr[2 * count + 2 * i + k], p.tau, p.cfg)
                      : bitsample::scaled_logit(cond, p.tau);
      }
      if (pl) {
        pl[2 * i] = l[0];
        pl[2 * i + 1] = l[1];
      }
      if (pb) {
        const float u = pu ? pu[i] : uniform_float(seed, p.stream, static_cast<uint64_t>(i));
        pb[i] = bitsample::sample(bitsample::prob_zero(l[0], l[1], p.top_k, p.top_p), u);
      }
    }
  });
}

void CpuBackend::bits_to_codes(const Tensor& bits, int patch, float zero, float one, Tensor& codes) {
  constexpr std::string_view op = "bits_to_codes";
  SPARVAR_CHECK(patch == 1 || patch == 2, "bits_to_codes: patch must be 1 or 2, got {}", patch);
  check_f32(codes, op, "codes");
  SPARVAR_CHECK(codes.ndim() == 4 && codes.dim(2) % patch == 0 && codes.dim(3) % patch == 0,
                "bits_to_codes: codes must be [B, d, h * {}, w * {}], got {}", patch, patch,
                shape_string(codes.shape()));
  const int64_t B = codes.dim(0), d = codes.dim(1), H = codes.dim(2), W = codes.dim(3);
  const int64_t h = H / patch, w = W / patch, D = d * patch * patch;
  check_u8(bits, {B, h * w, D}, op, "bits");
  check_disjoint(bits, codes, op, "bits");
  const uint8_t* pb = bits.data_as<uint8_t>();
  float* pc = codes.data_as<float>();
  const int p = patch;
  pool_.parallel_for(0, B * d * H, std::max<int64_t>(1, kGrain / std::max<int64_t>(W, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {  // row = (b * d + c) * H + Y
      const int64_t Y = row % H, c = (row / H) % d, b = row / (H * d);
      const int64_t y = Y / p, i = Y % p;
      for (int64_t X = 0; X < W; ++X) {
        const int64_t x = X / p, j = X % p;
        const uint8_t bit = pb[(b * h * w + y * w + x) * D + c * p * p + i * p + j];
        pc[row * W + X] = bit ? one : zero;
      }
    }
  });
}

}  // namespace sparvar::cpu

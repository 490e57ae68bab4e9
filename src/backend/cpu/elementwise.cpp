// Elementwise ops: activation, add, mul (suffix broadcast), adaln_modulate, gated_residual, softmax.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"

namespace sparvar::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;  // elements per task: enough work to amortise a wake-up

float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}
float silu(float x) { return x / (1.0f + std::exp(-x)); }
}  // namespace

void apply_activation(float* data, int64_t n, Activation act) {
  switch (act) {
    case Activation::None:
      return;
    case Activation::GeluTanh:
      for (int64_t i = 0; i < n; ++i) data[i] = gelu_tanh(data[i]);
      return;
    case Activation::Silu:
      for (int64_t i = 0; i < n; ++i) data[i] = silu(data[i]);
      return;
  }
  fail("unknown activation {}", static_cast<int>(act));
}

void CpuBackend::activation(const Tensor& x, Activation act, Tensor& y) {
  check_f32(x, "activation", "input");
  check_output(y, x.shape(), "activation");
  check_same_or_disjoint(x, y, "activation", "input");
  SPARVAR_CHECK(act == Activation::None || act == Activation::GeluTanh || act == Activation::Silu,
                "activation: unknown activation {}", static_cast<int>(act));
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
  pool_.parallel_for(0, x.numel(), kGrain, [&](int64_t lo, int64_t hi) {
    if (out != in) std::memcpy(out + lo, in + lo, static_cast<size_t>(hi - lo) * sizeof(float));
    apply_activation(out + lo, hi - lo, act);
  });
}

namespace {
// b's shape must be a suffix of a's: y[i] = op(a[i], b[i % b.numel()]).
template <typename Op>
void broadcast_binary(ThreadPool& pool, const Tensor& a, const Tensor& b, Tensor& y, std::string_view op_name,
                      Op op) {
  check_f32(a, op_name, "a");
  check_f32(b, op_name, "b");
  const bool suffix = b.ndim() <= a.ndim() && std::equal(b.shape().begin(), b.shape().end(),
                                                         a.shape().end() - b.ndim());
  SPARVAR_CHECK(suffix, "{}: b {} is not a suffix of a {} (b broadcasts over a's leading dims)", op_name,
                shape_string(b.shape()), shape_string(a.shape()));
  check_output(y, a.shape(), op_name);
  check_same_or_disjoint(a, y, op_name, "a");
  check_same_or_disjoint(b, y, op_name, "b");
  const int64_t inner = b.numel();
  if (inner == 0) return;  // then a and y are empty too
  const float* pa = a.data_as<float>();
  const float* pb = b.data_as<float>();
  float* py = y.data_as<float>();
  pool.parallel_for(0, a.numel(), kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) py[i] = op(pa[i], pb[i % inner]);
  });
}
}  // namespace

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  broadcast_binary(pool_, a, b, y, "add", [](float u, float v) { return u + v; });
}

void CpuBackend::mul(const Tensor& a, const Tensor& b, Tensor& y) {
  broadcast_binary(pool_, a, b, y, "mul", [](float u, float v) { return u * v; });
}

void CpuBackend::adaln_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& y) {
  constexpr std::string_view op = "adaln_modulate";
  check_f32(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 3, "adaln_modulate: x must be [B, N, C], got {}", shape_string(x.shape()));
  const int64_t B = x.dim(0), N = x.dim(1), C = x.dim(2);
  check_f32(scale, op, "scale");
  SPARVAR_CHECK(scale.shape() == Shape({B, C}), "adaln_modulate: scale {} does not match x {} (expected [{},{}])",
                shape_string(scale.shape()), shape_string(x.shape()), B, C);
  check_f32(shift, op, "shift");
  SPARVAR_CHECK(shift.shape() == Shape({B, C}), "adaln_modulate: shift {} does not match x {} (expected [{},{}])",
                shape_string(shift.shape()), shape_string(x.shape()), B, C);
  check_output(y, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  check_disjoint(scale, y, op, "scale");
  check_disjoint(shift, y, op, "shift");
  const float* px = x.data_as<float>();
  const float* ps = scale.data_as<float>();
  const float* pt = shift.data_as<float>();
  float* py = y.data_as<float>();
  pool_.parallel_for(0, B * N, std::max<int64_t>(1, kGrain / std::max<int64_t>(C, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* s = ps + (r / N) * C;
      const float* t = pt + (r / N) * C;
      for (int64_t c = 0; c < C; ++c) py[r * C + c] = px[r * C + c] * (1.0f + s[c]) + t[c];
    }
  });
}

// Bit-identical to mul (the gate row) then add: x + (y * gate), each rounded to f32.
void CpuBackend::gated_residual(Tensor& x, const Tensor& gate, const Tensor& y) {
  constexpr std::string_view op = "gated_residual";
  check_f32(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 3, "gated_residual: x must be [B, N, C], got {}", shape_string(x.shape()));
  const int64_t B = x.dim(0), N = x.dim(1), C = x.dim(2);
  check_f32_shape(gate, {B, C}, op, "gate");
  check_f32_shape(y, x.shape(), op, "y");
  check_same_or_disjoint(y, x, op, "y");
  check_disjoint(gate, x, op, "gate");
  const float* pg = gate.data_as<float>();
  const float* py = y.data_as<float>();
  float* px = x.data_as<float>();
  pool_.parallel_for(0, B * N, std::max<int64_t>(1, kGrain / std::max<int64_t>(C, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* g = pg + (r / N) * C;
      for (int64_t c = 0; c < C; ++c) px[r * C + c] = px[r * C + c] + py[r * C + c] * g[c];
    }
  });
}

void CpuBackend::softmax(const Tensor& x, Tensor& y) {
  check_f32(x, "softmax", "input");
  SPARVAR_CHECK(x.ndim() >= 1, "softmax: input must have at least one dimension, got {}", shape_string(x.shape()));
  check_output(y, x.shape(), "softmax");
  check_same_or_disjoint(x, y, "softmax", "input");
  const int64_t C = x.dim(-1);
  if (C == 0) return;
  const int64_t rows = x.numel() / C;
  const float* px = x.data_as<float>();
  float* py = y.data_as<float>();
  pool_.parallel_for(0, rows, std::max<int64_t>(1, kGrain / C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* in = px + r * C;
      float* out = py + r * C;
      const float mx = *std::max_element(in, in + C);
      double sum = 0.0;
      for (int64_t c = 0; c < C; ++c) {
        out[c] = std::exp(in[c] - mx);
        sum += out[c];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t c = 0; c < C; ++c) out[c] *= inv;
    }
  });
}

}  // namespace sparvar::cpu

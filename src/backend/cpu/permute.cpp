// permute: walks the output in order, carrying the input offset with odometer-style counters.
#include <algorithm>
#include <array>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"

namespace sparvar::cpu {

void CpuBackend::permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) {
  constexpr std::string_view op = "permute";
  check_f32(x, op, "input");
  const int nd = x.ndim();
  SPARVAR_CHECK(nd <= 6, "permute: input {} has more than 6 dimensions", shape_string(x.shape()));
  SPARVAR_CHECK(static_cast<int>(perm.size()) == nd, "permute: perm [{}] has {} entries for input {}",
                fmt::join(perm, ","), perm.size(), shape_string(x.shape()));
  std::array<bool, 6> used{};
  Shape out_shape(static_cast<size_t>(nd));
  for (int i = 0; i < nd; ++i) {
    const int p = perm[static_cast<size_t>(i)];
    SPARVAR_CHECK(p >= 0 && p < nd && !used[static_cast<size_t>(p)], "permute: perm [{}] is not a permutation of 0..{}",
                  fmt::join(perm, ","), nd - 1);
    used[static_cast<size_t>(p)] = true;
    out_shape[static_cast<size_t>(i)] = x.shape()[static_cast<size_t>(p)];
  }
  check_output(y, out_shape, op);
  check_disjoint(x, y, op, "input");
  const int64_t total = y.numel();
  if (total == 0) return;

  std::array<int64_t, 6> in_stride{};  // strides of x, in elements
  int64_t stride = 1;
  for (int d = nd - 1; d >= 0; --d) {
    in_stride[static_cast<size_t>(d)] = stride;
    stride *= x.shape()[static_cast<size_t>(d)];
  }
  std::array<int64_t, 6> size{}, step{};  // per output dim: extent and input stride
  for (int i = 0; i < nd; ++i) {
    size[static_cast<size_t>(i)] = out_shape[static_cast<size_t>(i)];
    step[static_cast<size_t>(i)] = in_stride[static_cast<size_t>(perm[static_cast<size_t>(i)])];
  }
  const float* px = x.data_as<float>();
  float* py = y.data_as<float>();
  pool_.parallel_for(0, total, 1 << 14, [&](int64_t lo, int64_t hi) {
    std::array<int64_t, 6> idx{};
    int64_t rem = lo, src = 0;
    for (int i = nd - 1; i >= 0; --i) {
      idx[static_cast<size_t>(i)] = rem % size[static_cast<size_t>(i)];
      rem /= size[static_cast<size_t>(i)];
      src += idx[static_cast<size_t>(i)] * step[static_cast<size_t>(i)];
    }
    for (int64_t o = lo; o < hi; ++o) {
      py[o] = px[src];
      for (int i = nd - 1; i >= 0; --i) {  // increment the odometer
        const auto u = static_cast<size_t>(i);
        src += step[u];
        if (++idx[u] < size[u]) break;
        src -= step[u] * size[u];
        idx[u] = 0;
      }
    }
  });
}

}  // namespace sparvar::cpu

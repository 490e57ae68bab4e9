// test_backend_ops, part 3: the skinny GEMM (src/backend/cuda/gemm_skinny.h) called directly.
//  - every configuration (k_warps x cluster x unroll = 32) on shapes off every multiple the kernel works in (K not
//    whole 32-k steps, fewer k steps than warps, N not whole 16- or 128-feature blocks, each token tile count, the
//    residual mode), against the CPU's linear (+ y); the planner only ever picks a few of them, a benchmark sweep
//    may pick any;
//  - linear and linear_residual on the backend go to the kernel: their outputs equal, bit for bit, the kernel's run
//    on the same inputs (deterministic: no atomics, fixed reduction order), twice in a row;
//  - what it must decline (run() returns false and writes nothing): x or w not 16-byte aligned, K % 8 != 0, M over
//    its limit, an activation with the residual mode.
// The linear cases of test_backend_ops.cpp check the same paths through the backend (and their fallbacks) against
// the CPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend/cuda/gemm_skinny.h"
#include "backend/cuda/op_helpers.h"
#include "backend/cuda/stream_of.h"
#include "backend_ops_util.h"
#include "core/error.h"

namespace sparvar::backend_ops {
namespace {

struct SkinnyShape {
  int64_t m, k, n;
  bool bias;
  Activation act;
  bool accumulate;  // y += x w^T + bias (act None)
};

std::string describe(const SkinnyShape& s) {
  return fmt::format("M={} K={} N={}{}{}{}", s.m, s.k, s.n, s.bias ? " bias" : "",
                     s.act == Activation::GeluTanh ? " gelu" : s.act == Activation::Silu ? " silu" : "",
                     s.accumulate ? " y+=" : "");
}

// Host inputs of one shape and the CPU's result: act(x w^T + bias), or y0 + x w^T + bias.
struct Problem {
  Tensor x, w, bias, y0;
  std::vector<float> expected;
};

Problem make_problem(Backend& cpu, const SkinnyShape& s) {
  Problem p;
  p.x = random_normal({s.m, s.k});
  p.w = random_normal({s.n, s.k}, 1.0f / std::sqrt(float(s.k)));
  p.bias = random_normal({s.n});
  p.y0 = random_normal({s.m, s.n});
  const Tensor x = cpu.upload(p.x, DType::F32), w = cpu.upload(p.w, DType::F32), b = cpu.upload(p.bias, DType::F32);
  Tensor y = cpu.empty({s.m, s.n}, DType::F32);
  cpu.linear(x, w, s.bias ? &b : nullptr, s.act, y);
  p.expected = cpu.download(y).to_floats();
  if (s.accumulate) {
    const std::vector<float> y0 = p.y0.to_floats();
    for (size_t i = 0; i < y0.size(); ++i) p.expected[i] += y0[i];
  }
  return p;
}

struct OnDevice {
  Tensor x, w, bias;
};

OnDevice upload(Backend& gpu, const Problem& p) {
  return {gpu.upload(p.x, DType::BF16), gpu.upload(p.w, DType::BF16), gpu.upload(p.bias, DType::BF16)};
}

// y: y0 for the residual mode, else poisoned with NaN (every element must be written).
Tensor fresh_output(Backend& gpu, const SkinnyShape& s, const Problem& p) {
  return s.accumulate ? gpu.upload(p.y0, DType::BF16) : poisoned(gpu, {s.m, s.n}, DType::BF16);
}

cuda::SkinnyGemmArgs args_for(const SkinnyShape& s, const OnDevice& d, Tensor& y) {
  return {d.x.data(), d.w.data(), s.bias ? d.bias.data() : nullptr, y.data(), s.m, s.n, s.k, cuda::kernel_act(s.act),
          s.accumulate};
}

void report(const std::string& what, bool ok, const std::string& note, Tally& tally) {
  std::printf("%-15s %-58s %-5s %-10s %s%s\n", "skinny", what.c_str(), "bf16", "-", ok ? "OK  " : "FAIL", note.c_str());
  std::fflush(stdout);
  tally.record(ok);
}

void check_all_configs(Backend& cpu, Backend& gpu, cuda::SkinnyGemm& skinny, const SkinnyShape& s, Tally& tally) {
  const Problem p = make_problem(cpu, s);
  const OnDevice d = upload(gpu, p);
  double worst = 0.0, worst_max = 0.0;
  bool ok = true;
  std::string note;
  int runs = 0;
  for (int k_warps : {1, 2, 4, 8})
    for (int cluster : {1, 2, 4, 8})
      for (int unroll : {4, 8}) {
        const cuda::SkinnyConfig c{k_warps, cluster, unroll};
        Tensor y = fresh_output(gpu, s, p);
        if (!skinny.launch(args_for(s, d, y), c, cuda::cuda_stream(gpu))) {
          ok = false;
          note += fmt::format(" [k_warps={} cluster={} unroll={} declined]", k_warps, cluster, unroll);
          continue;
        }
        ++runs;
        const Errors e = compare_values(gpu.download(y).to_floats(), p.expected);
        const bool good = e.rel_l2 <= kTolBf16 && e.rel_max <= kMaxErrFactor * kTolBf16;  // false for NaN
        if (!good)
          note += fmt::format(" [k_warps={} cluster={} unroll={}: {:.2e}]", k_warps, cluster, unroll, e.rel_l2);
        ok = ok && good;
        worst = std::max(worst, std::isnan(e.rel_l2) ? INFINITY : e.rel_l2);
        worst_max = std::max(worst_max, std::isnan(e.rel_max) ? INFINITY : e.rel_max);
      }
  report(describe(s) + " all configs", ok,
         fmt::format(" ({} runs; worst {:.3e}, max err {:.2e}, tol {:.0e}){}", runs, worst, worst_max, kTolBf16, note),
         tally);
}

// The backend's linear / linear_residual against the kernel's own run() on the same device inputs.
void check_dispatch(Backend& gpu, cuda::SkinnyGemm& skinny, const SkinnyShape& s, const Problem& p, Tally& tally) {
  const OnDevice d = upload(gpu, p);
  std::string note;
  bool ok = false;
  try {
    Tensor via_backend = fresh_output(gpu, s, p);
    if (s.accumulate) {
      const Tensor x3 = d.x.view({1, s.m, s.k});
      Tensor y3 = via_backend.view({1, s.m, s.n});
      Tensor scratch = poisoned(gpu, {1, s.m, s.n}, DType::BF16);
      gpu.linear_residual(x3, d.w, s.bias ? &d.bias : nullptr, nullptr, y3, scratch);
    } else {
      gpu.linear(d.x, d.w, s.bias ? &d.bias : nullptr, s.act, via_backend);
    }
    const std::vector<float> got = gpu.download(via_backend).to_floats();
    bool same = true;
    for (int rep = 0; rep < 2; ++rep) {
      Tensor direct = fresh_output(gpu, s, p);
      SPARVAR_CHECK(skinny.run(args_for(s, d, direct), cuda::cuda_stream(gpu)), "the kernel declined");
      same = same && identical(got, gpu.download(direct).to_floats());
    }
    ok = same;
    note = same ? " (bit for bit, twice)" : " (differs from the kernel's run: not dispatched, or not deterministic)";
  } catch (const Error& e) {
    note = std::string(" (threw: ") + e.what() + ")";
  }
  report(describe(s) + (s.accumulate ? " linear_residual=kernel" : " linear=kernel"), ok, note, tally);
}

// run() must return false and leave y untouched.
void check_declines(Backend& gpu, cuda::SkinnyGemm& skinny, Tally& tally) {
  const int64_t m = 4, k = 256, n = 64;
  Tensor x_flat = gpu.upload(random_normal({m * k + 8}), DType::BF16);
  Tensor w_flat = gpu.upload(random_normal({n * k + 8}), DType::BF16);
  Tensor x36 = gpu.upload(random_normal({m, 36}), DType::BF16), w36 = gpu.upload(random_normal({n, 36}), DType::BF16);
  Tensor x_many = gpu.upload(random_normal({cuda::kSkinnyMaxRows + 1, k}), DType::BF16);
  const char* x0 = static_cast<const char*>(x_flat.data());
  const char* w0 = static_cast<const char*>(w_flat.data());
  struct Decline {
    const char* what;
    cuda::SkinnyGemmArgs args;
  };
  Tensor y = poisoned(gpu, {cuda::kSkinnyMaxRows + 1, n}, DType::BF16);
  const std::vector<Decline> declines = {
      {"x 2 bytes past 16", {x0 + 2, w0, nullptr, y.data(), m, n, k, cuda::KernelAct::None, false}},
      {"x 8 bytes past 16", {x0 + 8, w0, nullptr, y.data(), m, n, k, cuda::KernelAct::None, false}},
      {"w 2 bytes past 16", {x0, w0 + 2, nullptr, y.data(), m, n, k, cuda::KernelAct::None, false}},
      {"K % 8 != 0 (36)", {x36.data(), w36.data(), nullptr, y.data(), m, n, 36, cuda::KernelAct::None, false}},
      {"M over the kernel's limit",
       {x_many.data(), w0, nullptr, y.data(), cuda::kSkinnyMaxRows + 1, n, k, cuda::KernelAct::None, false}},
      {"residual with an activation", {x0, w0, nullptr, y.data(), m, n, k, cuda::KernelAct::GeluTanh, true}},
  };
  for (const Decline& dcl : declines) {
    bool ok = false;
    std::string note;
    try {
      const bool ran = skinny.run(dcl.args, cuda::cuda_stream(gpu));
      bool untouched = true;
      for (float v : gpu.download(y).to_floats()) untouched = untouched && std::isnan(v);
      ok = !ran && untouched;
      note = ran ? " (ran)" : untouched ? " (declined)" : " (declined, but y was written)";
    } catch (const Error& e) {
      note = std::string(" (threw: ") + e.what() + ")";
    }
    report(std::string("declines: ") + dcl.what, ok, note, tally);
  }
}

}  // namespace

void run_skinny_checks(Backend& cpu, Backend& gpu, const Options& options, Tally& tally) {
  if (!selected(options, "skinny")) return;
  cuda::SkinnyGemm skinny(0, cuda::kSkinnyMaxRows);
  const std::vector<SkinnyShape> sweep = {
      {1, 64, 8, true, Activation::None, false},           // one step, one tile, most warps idle
      {5, 520, 200, true, Activation::GeluTanh, false},    // 17 steps: fewer than the 64 parts of the widest split
      {13, 2048, 100, false, Activation::Silu, false},     // two token tiles
      {32, 1000, 48, true, Activation::None, true},        // four token tiles, K % 32 = 8, residual
      {8, 3584, options.small ? 512 : 3584, true, Activation::None, true},  // 8B's projection at 2x2 with CFG
  };
  for (const SkinnyShape& s : sweep) check_all_configs(cpu, gpu, skinny, s, tally);

  // The backend's dispatch, unless this run turned the kernel off (or lowered its limit below these shapes).
  if (cuda::skinny_rows_from_env() >= 16) {
    const std::vector<SkinnyShape> dispatched = {
        {2, 3584, 3 * 3584, true, Activation::None, false},
        {8, 2048, 4 * 2048, true, Activation::GeluTanh, false},
        {16, 4 * 2048, 2048, false, Activation::Silu, false},
        {8, 3584, 3584, true, Activation::None, true},
        {3, 72, 100, false, Activation::None, true},
    };
    for (const SkinnyShape& s : dispatched) check_dispatch(gpu, skinny, s, make_problem(cpu, s), tally);
  }
  check_declines(gpu, skinny, tally);
}

}  // namespace sparvar::backend_ops

// test_backend_ops, part 5: the folded cross-attention on CUDA (cuBLASLt products batched over heads / text rows, our
// key-bias and per-head softmax kernels) against the CPU backend's default bodies (host loops in double precision).
// Inputs random and bf16-representable, every GPU output poisoned with NaN first; x starts small (0.01 scale), so
// the cross-attention's contribution, not x's own rounding, is what the comparison sees.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backend_ops_util.h"
#include "core/error.h"

namespace sparvar::backend_ops {
namespace {

struct FoldCase {
  int64_t B, N, H, D, L, Lp;
  std::vector<int32_t> lengths;
  bool big;  // skipped with --small
};

FoldedText make_fold(Backend& be, const FoldCase& c, DType dtype, bool poison) {
  const int64_t C = c.H * c.D, HL = c.H * c.Lp;
  FoldedText f;
  f.kf = poison ? poisoned(be, {c.B, HL, C}, dtype) : be.empty({c.B, HL, C}, dtype);
  f.kb = poison ? poisoned(be, {c.B, HL}, DType::F32) : be.empty({c.B, HL}, DType::F32);
  f.vf = poison ? poisoned(be, {c.B, C, HL}, dtype) : be.empty({c.B, C, HL}, dtype);
  f.heads = c.H;
  f.keys = c.Lp;
  return f;
}

// kb: the same -inf entries, the finite ones close.
bool key_bias_matches(const Tensor& got, const Tensor& want, double tol, double& err) {
  const std::vector<float> a = got.to_floats(), b = want.to_floats();
  std::vector<float> fa, fb;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(b[i])) {
      if (!(std::isinf(a[i]) && a[i] < 0)) return false;
      continue;
    }
    fa.push_back(a[i]);
    fb.push_back(b[i]);
  }
  err = compare_values(fa, fb).rel_l2;
  return err <= tol;
}

void print(const std::string& op, const std::string& desc, DType dtype, double err, bool ok) {
  std::printf("%-15s %-58s %-5s %-10.2e %s\n", op.c_str(), desc.c_str(), std::string(dtype_name(dtype)).c_str(), err,
              ok ? "OK" : "FAIL");
}

void run_case(Backend& cpu, Backend& gpu, const FoldCase& c, DType dtype, Tally& tally) {
  const int64_t C = c.H * c.D, HL = c.H * c.Lp;
  const std::string desc = fmt::format("B{} N{} H{} D{} L{} Lp{}", c.B, c.N, c.H, c.D, c.L, c.Lp);
  const float w_scale = 1.0f / std::sqrt(static_cast<float>(C)), scale = 1.0f / std::sqrt(static_cast<float>(c.D));
  const Tensor k = random_normal({c.B, c.H, c.L, c.D}), v = random_normal({c.B, c.H, c.L, c.D});
  const Tensor wq = random_normal({C, C}, w_scale), bq = random_normal({C}, 0.5f), wp = random_normal({C, C}, w_scale);
  const Tensor bp = random_normal({C}, 0.1f), h = random_normal({c.B, c.N, C}), x0 = random_normal({c.B, c.N, C}, 0.01f);
  const double tol = dtype == DType::BF16 ? kTolBf16 : kTolF32Gemm;
  // Reference: the CPU backend (F32).
  FoldedText rf = make_fold(cpu, c, DType::F32, false);
  cpu.fold_cross_attention(k, v, c.lengths, wq, bq, wp, rf);
  Tensor rx = x0.clone(), rs = cpu.empty({c.B, c.N, HL}, DType::F32), rp = cpu.empty({c.B, c.N, HL}, DType::F32);
  Tensor rscratch = cpu.empty({c.B, c.N, C}, DType::F32);
  cpu.folded_cross_attention(h, rf, scale, &bp, rx, rs, rp, rscratch);

  try {
    FoldedText gf = make_fold(gpu, c, dtype, true);
    gpu.fold_cross_attention(gpu.upload(k, dtype), gpu.upload(v, dtype), c.lengths, gpu.upload(wq, dtype),
                             gpu.upload(bq, dtype), gpu.upload(wp, dtype), gf);
    const double e_kf = compare(gpu.download(gf.kf), rf.kf).rel_l2, e_vf = compare(gpu.download(gf.vf), rf.vf).rel_l2;
    double e_kb = 0.0;
    const bool ok_kb = key_bias_matches(gpu.download(gf.kb), rf.kb, tol, e_kb);
    print("fold_xattn kf", desc, dtype, e_kf, e_kf <= tol);
    print("fold_xattn kb", desc, dtype, e_kb, ok_kb);
    print("fold_xattn vf", desc, dtype, e_vf, e_vf <= tol);
    tally.record(e_kf <= tol);
    tally.record(ok_kb);
    tally.record(e_vf <= tol);

    Tensor gx = gpu.upload(x0, dtype), gs = poisoned(gpu, {c.B, c.N, HL}, DType::F32);
    Tensor gp = poisoned(gpu, {c.B, c.N, HL}, dtype), gscratch = poisoned(gpu, {c.B, c.N, C}, dtype);
    const Tensor gbp = gpu.upload(bp, dtype);
    const Tensor gx0 = gpu.download(gx);  // x as the GPU holds it (rounded to dtype)
    gpu.folded_cross_attention(gpu.upload(h, dtype), gf, scale, &gbp, gx, gs, gp, gscratch);
    const std::vector<float> got = gpu.download(gx).to_floats(), before = gx0.to_floats();
    const std::vector<float> want = rx.to_floats(), start = x0.to_floats();
    std::vector<float> d_got(got.size()), d_want(got.size());
    for (size_t i = 0; i < got.size(); ++i) {
      d_got[i] = got[i] - before[i];
      d_want[i] = want[i] - start[i];
    }
    // bf16: kf, P, vf and x each rounded once more than the reference: twice the per-op tolerance.
    const double e_x = compare_values(d_got, d_want).rel_l2, tol_x = dtype == DType::BF16 ? 2 * kTolBf16 : tol;
    print("folded_xattn", desc, dtype, e_x, e_x <= tol_x);
    tally.record(e_x <= tol_x);
  } catch (const Error& e) {
    std::printf("%-15s %-58s %-5s %-10s FAIL (threw: %s)\n", "fold_xattn", desc.c_str(),
                std::string(dtype_name(dtype)).c_str(), "-", e.what());
    tally.record(false);
  }
}

}  // namespace

void run_xattn_fold_cases(Backend& cpu, Backend& gpu, const Options& options, Tally& tally) {
  const std::vector<FoldCase> cases = {
      {2, 7, 4, 32, 5, 8, {5, 3}, false},          // padded keys, rows of different lengths
      {1, 1, 2, 64, 8, 8, {8}, false},             // one token (the 1x1 scale)
      {2, 33, 16, 128, 32, 32, {32, 19}, true},    // Infinity-2B's heads, a 32-token text
      {2, 40, 28, 128, 21, 24, {21, 7}, true},     // Infinity-8B's heads, 21 tokens padded to 24
  };
  for (const FoldCase& c : cases) {
    if (c.big && options.small) continue;
    for (DType dtype : {DType::BF16, DType::F32}) {
      if (!selected(options, "fold_xattn") && !selected(options, "folded_xattn")) continue;
      run_case(cpu, gpu, c, dtype, tally);
    }
  }
}

}  // namespace sparvar::backend_ops

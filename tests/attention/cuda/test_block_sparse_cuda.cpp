// Block-sparse attention kernels against a plain CPU reference (double accumulation, exact softmax over the
// listed blocks), outputs and block mass (simple and pipelined kernels). Prints "skipped: no CUDA device" and exits 77 (ctest: skipped) where no GPU is present (CI); otherwise every
// failure is loud and the exit code non-zero.
#include "block_sparse_attention.h"

#include "core/error.h"
#include "cuda_test_util.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using sparvar::test::expect;

uint16_t to_bf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}
float from_bf16(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) { CUDA_OK(cudaMalloc(&ptr, std::max<size_t>(count, 1) * sizeof(T))); }
  DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    CUDA_OK(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  std::vector<T> download() const {
    std::vector<T> h(n);
    CUDA_OK(cudaMemcpy(h.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
};

struct Case {
  std::string name;
  int batch, heads, head_dim, nq, nk, q_block, k_block;
  bool per_head_pattern, partial_keys, with_mass, dense;
  // k / v as the first nk rows of longer per-head buffers (kv_rows) and the output token-major through a
  // random slot -> token map with padding slots (what the CUDA sparse runner does with its KV cache).
  bool in_place = false;
  // Key rows scaled by 1 + k_rise * row / nk: scores grow along the keys, so a row's max keeps rising by large jumps
  // (past the kernels' kMaxLagLog2, and at 40 past what exp2 of an unrescaled score could hold).
  float k_rise = 0.f;
};

// In-place operands of a case: longer k / v rows (their tail NaN: never read) and a slot -> token map.
struct InPlace {
  int kv_rows = 0, tokens = 0;       // tokens: the real (mapped) query tokens; one guard token more is allocated
  std::vector<int> token_of_slot;    // [nq], -1 for padding slots
};

InPlace make_in_place(const Case& c, std::mt19937& rng) {
  InPlace ip;
  ip.kv_rows = c.nk + 64 + 8;
  std::vector<int> slots;
  for (int s = 0; s < c.nq; ++s)
    if (rng() % 8 != 0) slots.push_back(s);
  std::shuffle(slots.begin(), slots.end(), rng);
  ip.token_of_slot.assign(static_cast<size_t>(c.nq), -1);
  for (size_t t = 0; t < slots.size(); ++t) ip.token_of_slot[static_cast<size_t>(slots[t])] = static_cast<int>(t);
  ip.tokens = static_cast<int>(slots.size());
  return ip;
}

// Rows [nk, kv_rows) of every (batch*head) appended as NaN.
std::vector<uint16_t> widen_rows(const std::vector<uint16_t>& x, int bh, int nk, int kv_rows, int D) {
  std::vector<uint16_t> wide(static_cast<size_t>(bh) * kv_rows * D, 0xffff);
  for (int i = 0; i < bh; ++i)
    std::copy_n(x.begin() + static_cast<ptrdiff_t>(i) * nk * D, static_cast<size_t>(nk) * D,
                wide.begin() + static_cast<ptrdiff_t>(i) * kv_rows * D);
  return wide;
}

struct Pattern {
  std::vector<int> offsets, cols;
};

// Rows of every kind: one block, all blocks, a random subset, a window that moves with the row (neighbouring rows
// share most of it, as on CSLA's lists: the shared kernel's pairs of 64-row blocks split it into common and own
// blocks), now and then none; per head or shared.
Pattern random_pattern(const Case& c, std::mt19937& rng) {
  const int qblocks = c.nq / c.q_block, kblocks = c.nk / c.k_block;
  const int pattern_heads = c.per_head_pattern ? c.heads : 1;
  Pattern p;
  p.offsets.push_back(0);
  for (int r = 0; r < pattern_heads * qblocks; ++r) {
    std::vector<int> row;
    const int kind = c.dense ? 1 : static_cast<int>(rng() % 5);
    if (kind == 0) {
      if (rng() % 4 != 0) row.push_back(static_cast<int>(rng() % kblocks));  // else empty: zeros
    } else if (kind == 1) {
      for (int k = 0; k < kblocks; ++k) row.push_back(k);
    } else if (kind == 4) {
      const int qb = r % qblocks, width = 2 + static_cast<int>(rng() % 5);
      const int first = std::min(kblocks - 1, qb * kblocks / qblocks + static_cast<int>(rng() % 2));
      if (first > 0) row.push_back(0);  // a sink
      for (int k = first; k < std::min(kblocks, first + width); ++k) row.push_back(k);
    } else {
      for (int k = 0; k < kblocks; ++k)
        if (rng() % 100 < 30) row.push_back(k);
      if (row.empty()) row.push_back(kblocks - 1);
    }
    p.cols.insert(p.cols.end(), row.begin(), row.end());
    p.offsets.push_back(static_cast<int>(p.cols.size()));
  }
  return p;
}

struct Reference {
  std::vector<double> out, mass;
};

Reference reference(const Case& c, const std::vector<uint16_t>& q, const std::vector<uint16_t>& k,
                    const std::vector<uint16_t>& v, const Pattern& pat, const std::vector<int>& kvalid,
                    const std::vector<int>& qvalid, float scale) {
  const int D = c.head_dim, qblocks = c.nq / c.q_block;
  const int nnz = static_cast<int>(pat.cols.size());
  Reference ref;
  ref.out.assign(static_cast<size_t>(c.batch) * c.heads * c.nq * D, 0.0);
  ref.mass.assign(static_cast<size_t>(c.batch) * (c.per_head_pattern ? 1 : c.heads) * nnz, 0.0);
  std::vector<float> qf(q.size()), kf(k.size()), vf(v.size());
  for (size_t i = 0; i < q.size(); ++i) qf[i] = from_bf16(q[i]);
  for (size_t i = 0; i < k.size(); ++i) kf[i] = from_bf16(k[i]);
  for (size_t i = 0; i < v.size(); ++i) vf[i] = from_bf16(v[i]);
  for (int b = 0; b < c.batch; ++b)
    for (int h = 0; h < c.heads; ++h) {
      const size_t bh = static_cast<size_t>(b) * c.heads + h;
      const size_t mbase = c.per_head_pattern ? b * static_cast<size_t>(nnz) : bh * nnz;
      for (int qb = 0; qb < qblocks; ++qb) {
        const int row = (c.per_head_pattern ? h : 0) * qblocks + qb;
        std::vector<int> keys;  // valid keys listed, with their entry index
        std::vector<int> entry_of;
        for (int e = pat.offsets[row]; e < pat.offsets[row + 1]; ++e) {
          const int kb = pat.cols[e];
          for (int j = 0; j < kvalid[kb]; ++j) {
            keys.push_back(kb * c.k_block + j);
            entry_of.push_back(e);
          }
        }
        for (int i = 0; i < c.q_block; ++i) {
          const int qi = qb * c.q_block + i;
          const float* qr = &qf[(bh * c.nq + qi) * D];
          std::vector<double> s(keys.size());
          double mx = -INFINITY;
          for (size_t t = 0; t < keys.size(); ++t) {
            const float* kr = &kf[(bh * c.nk + keys[t]) * D];
            double acc = 0;
            for (int d = 0; d < D; ++d) acc += static_cast<double>(qr[d]) * kr[d];
            s[t] = acc * scale;
            mx = std::max(mx, s[t]);
          }
          double sum = 0;
          for (double& x : s) sum += (x = std::exp(x - mx));
          if (keys.empty()) continue;  // output stays 0
          double* o = &ref.out[(bh * c.nq + qi) * D];
          for (size_t t = 0; t < keys.size(); ++t) {
            const float* vr = &vf[(bh * c.nk + keys[t]) * D];
            const double w = s[t] / sum;
            for (int d = 0; d < D; ++d) o[d] += w * vr[d];
            if (i < qvalid[qb]) ref.mass[mbase + entry_of[t]] += w / qvalid[qb];
          }
        }
      }
    }
  return ref;
}

void run_case(Case c, int kernel, std::mt19937& rng) {
  if (kernel == BSA_KERNEL_WIDE) c.with_mass = false;    // block_mass would run the pipelined kernel instead
  if (kernel == BSA_KERNEL_SHARED) {  // q_block 128, or 64 with k_block 64 (pairs); no block_mass (error_cases)
    if (c.q_block != 128 && c.k_block != 64) return;
    c.with_mass = false;
  }
  const int D = c.head_dim, bh = c.batch * c.heads;
  const int qblocks = c.nq / c.q_block, kblocks = c.nk / c.k_block;
  std::normal_distribution<float> normal(0.f, 1.f);
  auto randn = [&](size_t n, float sigma) {
    std::vector<uint16_t> x(n);
    for (auto& e : x) e = to_bf16(sigma * normal(rng));
    return x;
  };
  const auto q = randn(static_cast<size_t>(bh) * c.nq * D, 1.5f);
  auto k = randn(static_cast<size_t>(bh) * c.nk * D, 1.f);
  if (c.k_rise > 0.f)
    for (size_t i = 0; i < k.size(); ++i) {
      const size_t row = (i / D) % static_cast<size_t>(c.nk);
      k[i] = to_bf16(from_bf16(k[i]) * (1.f + c.k_rise * static_cast<float>(row) / static_cast<float>(c.nk)));
    }
  const auto v = randn(static_cast<size_t>(bh) * c.nk * D, 1.f);
  const Pattern pat = random_pattern(c, rng);
  std::vector<int> kvalid(kblocks, c.k_block), qvalid(qblocks, c.q_block);
  if (c.partial_keys) {
    for (int kb = 0; kb < kblocks; ++kb)
      if (rng() % 3 == 0) kvalid[kb] = 1 + static_cast<int>(rng() % (c.k_block - 1));
    kvalid[kblocks - 1] = 0;  // a block of padding only: rows listing only it get zeros
    for (int qb = 0; qb < qblocks; ++qb)
      if (rng() % 3 == 0) qvalid[qb] = 1 + static_cast<int>(rng() % c.q_block);
  }
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const Reference ref = reference(c, q, k, v, pat, kvalid, qvalid, scale);

  const InPlace ip = c.in_place ? make_in_place(c, rng) : InPlace{};
  const size_t out_elems = c.in_place ? static_cast<size_t>(c.batch) * (ip.tokens + 1) * c.heads * D : q.size();
  DeviceBuffer<uint16_t> dq(q), dk(c.in_place ? widen_rows(k, bh, c.nk, ip.kv_rows, D) : k),
      dv(c.in_place ? widen_rows(v, bh, c.nk, ip.kv_rows, D) : v), dout(out_elems);
  DeviceBuffer<int> dmap(c.in_place ? ip.token_of_slot : std::vector<int>{0});
  DeviceBuffer<int> doff(pat.offsets), dcols(pat.cols), dkvalid(kvalid), dqvalid(qvalid);
  DeviceBuffer<float> dmass(ref.mass.size());
  CUDA_OK(cudaMemset(dout.ptr, 0xff, dout.n * 2));  // NaN poison: every element must be written
  CUDA_OK(cudaMemset(dmass.ptr, 0xff, dmass.n * 4));

  BlockSparseAttentionArgs a{};
  a.q = dq.ptr;
  a.k = dk.ptr;
  a.v = dv.ptr;
  a.out = dout.ptr;
  a.batch = c.batch;
  a.heads = c.heads;
  a.head_dim = D;
  a.nq = c.nq;
  a.nk = c.nk;
  a.q_block = c.q_block;
  a.k_block = c.k_block;
  a.row_offsets = doff.ptr;
  a.col_blocks = dcols.ptr;
  a.nnz = static_cast<int>(pat.cols.size());
  a.pattern_heads = c.per_head_pattern ? c.heads : 1;
  a.k_valid = c.partial_keys ? dkvalid.ptr : nullptr;
  a.q_valid = c.partial_keys ? dqvalid.ptr : nullptr;
  a.softmax_scale = scale;
  a.block_mass = c.with_mass ? dmass.ptr : nullptr;
  a.kernel = kernel;
  if (c.in_place) {
    a.kv_rows = ip.kv_rows;
    a.out_rows = dmap.ptr;
    a.out_tokens = ip.tokens + 1;  // the last token is a guard no slot maps to: it must stay NaN
  }
  const std::string tag = c.name + " [kernel " + std::to_string(kernel) + "]";
  try {
    sparvar::block_sparse_attention(a, nullptr);
  } catch (const sparvar::Error& e) {
    if (kernel != BSA_KERNEL_SIMPLE && std::string(e.what()).find("does not support") != std::string::npos) {
      std::printf("  %-44s not supported by this kernel\n", tag.c_str());
      return;
    }
    expect(false, tag + ": " + e.what());
    return;
  }
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());

  const auto written = dout.download();
  std::vector<uint16_t> out;  // the output in the reference's [B*H, nq, D] slot layout
  std::vector<char> check;    // which of its elements the kernel had to write
  if (c.in_place) {
    out.assign(q.size(), 0);
    check.assign(q.size(), 0);
    size_t guard_written = 0;
    for (int b = 0; b < c.batch; ++b)
      for (int h = 0; h < c.heads; ++h) {
        const size_t row = static_cast<size_t>(b) * c.heads + h;
        for (int slot = 0; slot < c.nq; ++slot) {
          const int t = ip.token_of_slot[static_cast<size_t>(slot)];
          if (t < 0) continue;
          const size_t src = ((static_cast<size_t>(b) * (ip.tokens + 1) + t) * c.heads + h) * D;
          std::copy_n(written.begin() + static_cast<ptrdiff_t>(src), D, out.begin() + static_cast<ptrdiff_t>((row * c.nq + slot) * D));
          std::fill_n(check.begin() + static_cast<ptrdiff_t>((row * c.nq + slot) * D), D, 1);
        }
        const size_t guard = ((static_cast<size_t>(b) * (ip.tokens + 1) + ip.tokens) * c.heads + h) * D;
        for (int d = 0; d < D; ++d) guard_written += std::isfinite(from_bf16(written[guard + d])) ? 1 : 0;
      }
    expect(guard_written == 0, tag + ": " + std::to_string(guard_written) + " elements written outside the mapped tokens");
  } else {
    out = written;
    check.assign(out.size(), 1);
  }
  double err2 = 0, ref2 = 0, max_err = 0;
  size_t bad = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!check[i]) continue;
    const double o = from_bf16(out[i]);
    if (!std::isfinite(o)) {
      ++bad;
      continue;
    }
    const double d = o - ref.out[i];
    err2 += d * d;
    ref2 += ref.out[i] * ref.out[i];
    max_err = std::max(max_err, std::abs(d));
  }
  const double rel = std::sqrt(err2 / std::max(ref2, 1e-30));
  expect(bad == 0, tag + ": " + std::to_string(bad) + " output elements not finite (unwritten?)");
  expect(rel < 1e-2, tag + ": relative error " + std::to_string(rel));
  expect(max_err < 5e-2, tag + ": max abs error " + std::to_string(max_err));
  double mass_err = 0;
  size_t mass_bad = 0;
  if (c.with_mass) {
    const auto mass = dmass.download();
    for (size_t i = 0; i < mass.size(); ++i) {
      if (!std::isfinite(mass[i])) ++mass_bad;
      else mass_err = std::max(mass_err, std::abs(mass[i] - ref.mass[i]));
    }
    expect(mass_bad == 0, tag + ": " + std::to_string(mass_bad) + " block_mass entries not finite");
    expect(mass_err < 2e-3, tag + ": block_mass max abs error " + std::to_string(mass_err));
  }
  std::printf("  %-44s rel %.2e  max %.2e  mass max %.2e  nnz %zu\n", tag.c_str(), rel, max_err, mass_err,
              pat.cols.size());
}

void expect_rejected(const char* what, void (*tweak)(BlockSparseAttentionArgs&)) {
  static int dummy_i[2] = {0, 1};
  BlockSparseAttentionArgs a{};
  a.q = a.k = a.v = reinterpret_cast<void*>(0x1000);
  a.out = reinterpret_cast<void*>(0x1000);
  a.batch = 1;
  a.heads = 1;
  a.head_dim = 128;
  a.nq = a.nk = 64;
  a.q_block = a.k_block = 64;
  a.row_offsets = dummy_i;
  a.col_blocks = dummy_i;
  a.nnz = 1;
  a.pattern_heads = 1;
  a.softmax_scale = 0.1f;
  tweak(a);
  const int rc = sparvar_block_sparse_attention(&a, nullptr);
  const std::string msg = sparvar_last_error();
  expect(rc != 0 && !msg.empty(), std::string("rejects ") + what);
  std::printf("  rejects %-36s -> %s\n", what, msg.c_str());
}

void error_cases() {
  expect_rejected("head_dim 96", [](BlockSparseAttentionArgs& a) { a.head_dim = 96; });
  expect_rejected("k_block 32", [](BlockSparseAttentionArgs& a) { a.k_block = 32; });
  expect_rejected("nq not a multiple", [](BlockSparseAttentionArgs& a) { a.nq = 100; });
  expect_rejected("null q", [](BlockSparseAttentionArgs& a) { a.q = nullptr; });
  expect_rejected("out not 16-byte aligned", [](BlockSparseAttentionArgs& a) {
    a.out = static_cast<char*>(a.out) + 2;
  });
  expect_rejected("null col_blocks", [](BlockSparseAttentionArgs& a) { a.col_blocks = nullptr; });
  expect_rejected("pattern_heads 3 of 1", [](BlockSparseAttentionArgs& a) { a.pattern_heads = 3; });
  expect_rejected("kv_rows below nk", [](BlockSparseAttentionArgs& a) { a.kv_rows = 32; });
  expect_rejected("out_rows without out_tokens", [](BlockSparseAttentionArgs& a) { a.out_rows = a.col_blocks; });
  expect_rejected("kernel 3 (retired)", [](BlockSparseAttentionArgs& a) { a.kernel = 3; });
  expect_rejected("kernel 6", [](BlockSparseAttentionArgs& a) { a.kernel = 6; });
  expect_rejected("q_block 64 with k_block 128 on the shared kernel", [](BlockSparseAttentionArgs& a) {
    a.q_block = 64;
    a.k_block = 128;
    a.nk = 128;
    a.kernel = BSA_KERNEL_SHARED;
  });
  expect_rejected("pairs of 64-row blocks on the shared kernel over its list capacity", [](BlockSparseAttentionArgs& a) {
    a.q_block = a.k_block = 64;
    a.nk = 64 * 4096;
    a.kernel = BSA_KERNEL_SHARED;
  });
  expect_rejected("block_mass on the shared kernel", [](BlockSparseAttentionArgs& a) {
    a.block_mass = reinterpret_cast<float*>(0x1000);
    a.kernel = BSA_KERNEL_SHARED;
  });
  const int offsets[3] = {0, 1, 1}, cols[1] = {0};
  bool threw = false;
  try {
    sparvar::check_block_sparse_pattern(offsets, cols, 2, 4);
  } catch (const sparvar::Error& e) {
    threw = std::string(e.what()).find("empty") != std::string::npos;
    std::printf("  pattern check -> %s\n", e.what());
  }
  expect(threw, "check_block_sparse_pattern rejects an empty row");
}

// The wide kernel's dynamic tile schedule: its counter must be back at zero after every launch (else the next
// launch on the stream skips tiles, which the poison shows) and private to each stream. The same random-list
// problem, launched again and again on two streams, must give the first launch's output bit for bit (a tile's
// result does not depend on the lane that computes it).
// kernel: WIDE (uneven lists: the dynamic schedule's counter) or SHARED on dense lists (with SPARVAR_BSA_SPLIT=on:
// the split tail's arrival counters, which each launch must leave at zero).
void repeated_launches_on_two_streams(std::mt19937& rng, int kernel = BSA_KERNEL_WIDE) {
  const int batch = 2, heads = 3, D = 128, nq = 1024, nk = 768, qb = nq / 64, kb = nk / 64;
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  auto random_bf16 = [&](size_t n) {
    std::vector<uint16_t> x(n);
    for (auto& e : x) e = to_bf16(uni(rng));
    return x;
  };
  const size_t elems = static_cast<size_t>(batch) * heads * nq * D, kv = static_cast<size_t>(batch) * heads * nk * D;
  DeviceBuffer<uint16_t> dq(random_bf16(elems)), dk(random_bf16(kv)), dv(random_bf16(kv)), dout(elems);
  std::vector<int> offsets{0}, cols;  // rows of 1..kb blocks: uneven lists, as the schedule is for
  const bool dense = kernel == BSA_KERNEL_SHARED;
  for (int r = 0; r < qb; ++r) {
    const int n = 1 + static_cast<int>(rng() % kb);
    for (int c = 0; c < kb; ++c)
      if (dense || static_cast<int>(rng() % kb) < n || c == r % kb) cols.push_back(c);
    offsets.push_back(static_cast<int>(cols.size()));
  }
  DeviceBuffer<int> doff(offsets), dcols(cols);
  BlockSparseAttentionArgs a{};
  a.q = dq.ptr;
  a.k = dk.ptr;
  a.v = dv.ptr;
  a.out = dout.ptr;
  a.batch = batch;
  a.heads = heads;
  a.head_dim = D;
  a.nq = nq;
  a.nk = nk;
  a.q_block = a.k_block = 64;
  a.row_offsets = doff.ptr;
  a.col_blocks = dcols.ptr;
  a.nnz = static_cast<int>(cols.size());
  a.pattern_heads = 1;
  a.softmax_scale = 1.f / std::sqrt(static_cast<float>(D));
  a.kernel = kernel;
  const std::string name = kernel == BSA_KERNEL_WIDE ? "wide kernel" : "shared kernel, dense";
  cudaStream_t side = nullptr;
  CUDA_OK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  std::vector<uint16_t> first;
  bool same = true, finite = true;
  for (int i = 0; i < 6; ++i) {
    const cudaStream_t stream = i % 2 ? side : nullptr;
    CUDA_OK(cudaMemset(dout.ptr, 0xff, dout.n * 2));  // NaN poison
    CUDA_OK(cudaDeviceSynchronize());
    sparvar::block_sparse_attention(a, stream);
    CUDA_OK(cudaDeviceSynchronize());
    const auto out = dout.download();
    for (uint16_t e : out) finite = finite && std::isfinite(from_bf16(e));
    if (i == 0) first = out;
    else same = same && out == first;
  }
  CUDA_OK(cudaStreamDestroy(side));
  expect(finite, name + ", repeated launches on two streams: every output written");
  expect(same, name + ", repeated launches on two streams: the same output every time");
  std::printf("  %s, 6 launches alternating two streams: %s\n", name.c_str(), finite && same ? "ok" : "FAILED");
}

}  // namespace

int main() {
  if (sparvar::test::no_cuda_device()) return sparvar::test::kSkipped;
  cudaDeviceProp prop{};
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  error_cases();
  const bool quick = std::getenv("SPARVAR_TEST_QUICK") != nullptr;  // small case for the sanitizers
  std::vector<Case> cases = {
      {"D128 q64 k64 shared mass partial", 2, 3, 128, 512, 768, 64, 64, false, true, true, false},
      {"D128 q64 k128 per-head", 2, 2, 128, 384, 640, 64, 128, true, true, false, false},
      {"D128 q128 k128 shared mass", 2, 2, 128, 512, 768, 128, 128, false, true, true, false},
      {"D128 q128 k64 per-head mass", 2, 2, 128, 384, 512, 128, 64, true, false, true, false},
      {"D64 q64 k64 per-head mass partial", 2, 3, 64, 512, 768, 64, 64, true, true, true, false},
      {"D64 q128 k128 shared", 2, 2, 64, 512, 640, 128, 128, false, true, false, false},
      {"D64 q64 k128 shared mass", 2, 2, 64, 256, 512, 64, 128, false, false, true, false},
      {"D128 q64 k64 dense", 2, 2, 128, 512, 1024, 64, 64, false, false, false, true},
      {"D128 q64 k64 dense mass", 1, 2, 128, 256, 384, 64, 64, true, true, true, true},
      {"D64 q64 k64 many tiles per-head partial", 2, 6, 64, 2048, 512, 64, 64, true, true, false, false},
      {"D128 q64 k64 many tiles shared", 2, 5, 128, 2048, 384, 64, 64, false, true, false, false},
      // An odd number of 64-row query blocks (a 128-row pair of them has one half only).
      {"D128 q64 k64 odd q blocks per-head partial", 2, 3, 128, 320, 512, 64, 64, true, true, false, false},
      {"D64 q64 k128 odd q blocks shared", 1, 2, 64, 448, 768, 64, 128, false, true, false, false},
      // Block mass from every (head dim, q block, k block, shared / per-head) corner, and over many tiles per
      // CTA: the mass pass moves the K ring ahead of the V ring, so wrapping rings are the case to watch.
      {"D128 q64 k128 per-head mass partial", 2, 2, 128, 384, 640, 64, 128, true, true, true, false},
      {"D64 q128 k128 per-head mass partial", 2, 2, 64, 512, 640, 128, 128, true, true, true, false},
      {"D64 q128 k64 shared mass partial", 2, 2, 64, 384, 512, 128, 64, false, true, true, false},
      {"D128 q128 k64 shared mass", 1, 3, 128, 256, 640, 128, 64, false, false, true, false},
      {"D64 q64 k64 many tiles per-head mass partial", 2, 6, 64, 2048, 512, 64, 64, true, true, true, false},
      {"D128 q64 k128 many tiles shared mass partial", 2, 5, 128, 1536, 768, 64, 128, false, true, true, false},
      {"D128 q64 k64 odd q blocks dense mass", 1, 3, 128, 320, 576, 64, 64, false, false, true, true},
      // In place (the runner's KV cache and token-major output): a longer k / v and a slot -> token map.
      {"D128 q64 k64 in place per-head partial", 2, 3, 128, 512, 768, 64, 64, true, true, false, false, true},
      {"D128 q128 k128 in place shared mass", 2, 2, 128, 512, 768, 128, 128, false, true, true, false, true},
      {"D64 q64 k128 in place many tiles mass", 2, 5, 64, 1536, 512, 64, 128, false, true, true, false, true},
      // Rising scores: the online softmax's rescaling path after the first step, and no overflow of large logits.
      {"D64 q64 k64 dense rising scores mass", 1, 2, 64, 256, 1024, 64, 64, true, false, true, true, false, 4.f},
      {"D128 q128 k128 rising scores x40", 2, 2, 128, 512, 1024, 128, 128, false, true, false, false, false, 40.f},
      {"D128 q64 k64 rising scores x40 mass", 1, 2, 128, 256, 1024, 64, 64, true, false, true, false, false, 40.f},
  };
  if (quick) cases = {{"quick D128 q64 k64 mass", 1, 2, 128, 128, 256, 64, 64, true, true, true, false},
                      {"quick D64 q64 k128 shared mass", 1, 2, 64, 192, 384, 64, 128, false, true, true, false},
                      {"quick D64 q128 k128", 1, 1, 64, 256, 256, 128, 128, false, true, true, false},
                      {"quick D64 q128 k64", 1, 2, 64, 256, 256, 128, 64, true, true, false, false},
                      {"quick D128 q64 k128 odd", 1, 2, 128, 192, 512, 64, 128, true, true, false, false},
                      {"quick D128 q64 k64 in place mass", 1, 2, 128, 192, 256, 64, 64, true, true, true, false, true}};
  // SPARVAR_TEST_KERNELS=4 (a comma list of kernel ids): only those, e.g. to check one kernel's variants quickly.
  // AUTO too: its choice depends on the pattern (near-dense 64 x 64 patterns run pairs on the shared kernel).
  std::vector<int> kernels = {BSA_KERNEL_SIMPLE, BSA_KERNEL_PIPELINED, BSA_KERNEL_WIDE, BSA_KERNEL_SHARED,
                              BSA_KERNEL_AUTO};
  if (const char* only = std::getenv("SPARVAR_TEST_KERNELS")) {
    std::vector<int> chosen;
    for (int k : kernels)
      if (std::strchr(only, '0' + k)) chosen.push_back(k);
    kernels = chosen;
  }
  auto chosen = [&](int k) { return std::find(kernels.begin(), kernels.end(), k) != kernels.end(); };
  std::mt19937 rng(20261124);
  for (const Case& c : cases)
    for (int kernel : kernels) run_case(c, kernel, rng);
  // Persistent CTAs that wrap over many tiles (and rings over many tiles), on a tiny grid.
  setenv("SPARVAR_ATTN_MAX_CTAS", "1", 1);
  std::printf("  (grid capped at 1 CTA)\n");
  for (const Case& c : cases)
    for (int kernel : {BSA_KERNEL_PIPELINED, BSA_KERNEL_WIDE, BSA_KERNEL_SHARED})
      if (chosen(kernel)) run_case(c, kernel, rng);
  repeated_launches_on_two_streams(rng);
  unsetenv("SPARVAR_ATTN_MAX_CTAS");
  repeated_launches_on_two_streams(rng);
  // The split tail (split_tail.h), forced wherever the last wave is partial: on grids of 3 and 5 CTAs (a few parts
  // per tail tile) and on the full grid (tiles fewer than SMs: many parts, some of them with no steps). Sparse lists
  // split too (q_block 128 by list position; pairs of unequal lists give part 0 the whole tile).
  setenv("SPARVAR_BSA_SPLIT", "on", 1);
  for (const char* ctas : {"3", "5", ""}) {
    if (*ctas) setenv("SPARVAR_ATTN_MAX_CTAS", ctas, 1);
    else unsetenv("SPARVAR_ATTN_MAX_CTAS");
    std::printf("  (split tail forced, grid capped at %s CTAs)\n", *ctas ? ctas : "no");
    for (const Case& c : cases)
      for (int kernel : {BSA_KERNEL_SHARED, BSA_KERNEL_AUTO})
        if (chosen(kernel)) run_case(c, kernel, rng);
    if (chosen(BSA_KERNEL_SHARED)) repeated_launches_on_two_streams(rng, BSA_KERNEL_SHARED);
  }
  unsetenv("SPARVAR_BSA_SPLIT");
  return sparvar::test::finish("test_block_sparse_cuda");
}

// The GPU CS4A builder against the CPU reference (batch average as the runner does it, cs4a_select,
// Cs4aMapper::map): identical selections and CSR patterns on random masses (peaked, exact zeros, exact ties),
// every configuration of cs4a_test_util.h, 1 / 3 / 16 / 28 heads, batch 1-3, outputs poisoned before the
// build; back-to-back builds on one stream into different targets; bad masses reported by check().
// Prints "skipped: no CUDA device" and exits 77 (ctest: skipped) where no GPU is present.
#include "cs4a_device.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "cs4a_test_util.h"
#include "cuda_test_util.h"

namespace {

using namespace sparvar;
using test::expect;

template <class T>
struct DeviceVec {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceVec(size_t count, int poison_byte = 0xff) : n(count) {
    CUDA_OK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)));
    CUDA_OK(cudaMemset(ptr, poison_byte, std::max<size_t>(n, 1) * sizeof(T)));
  }
  explicit DeviceVec(const std::vector<T>& host) : DeviceVec(host.size()) {
    CUDA_OK(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  DeviceVec(const DeviceVec&) = delete;
  DeviceVec(DeviceVec&& o) noexcept : ptr(o.ptr), n(o.n) { o.ptr = nullptr; }
  ~DeviceVec() {
    if (ptr) cudaFree(ptr);
  }
};

// Device CSR buffers for every scale of a plan, poisoned (-1) so entries the build forgets show.
struct Targets {
  std::vector<DeviceVec<int32_t>> offsets, cols;
  std::vector<Cs4aDeviceTarget> views;
  explicit Targets(const Cs4aPlan& plan) {
    for (const Cs4aPlanScale& s : plan.scales) {
      offsets.emplace_back(static_cast<size_t>(plan.heads) * s.num_q_blocks + 1);
      cols.emplace_back(static_cast<size_t>(s.nnz_bound));
      views.push_back({offsets.back().ptr, cols.back().ptr});
    }
  }
};

bool same(const BlockPattern& got, const BlockPattern& want) {
  return got.num_q_blocks == want.num_q_blocks && got.num_k_blocks == want.num_k_blocks &&
         got.row_offsets == want.row_offsets && got.col_blocks == want.col_blocks;
}

// First differing row, for the failure message.
std::string first_difference(const BlockPattern& got, const BlockPattern& want) {
  if (got.row_offsets.size() != want.row_offsets.size()) return "row count differs";
  for (size_t r = 0; r + 1 < want.row_offsets.size(); ++r) {
    const auto g = std::vector<int32_t>(got.col_blocks.begin() + got.row_offsets[r], got.col_blocks.begin() + got.row_offsets[r + 1]);
    const auto w = std::vector<int32_t>(want.col_blocks.begin() + want.row_offsets[r], want.col_blocks.begin() + want.row_offsets[r + 1]);
    if (g != w) return "row " + std::to_string(r) + ": " + std::to_string(g.size()) + " vs " + std::to_string(w.size()) + " blocks";
  }
  return "same rows";
}

// Checks one build's outputs against the reference on the same mass.
void check_outputs(const std::string& tag, const Cs4aPlan& plan, Cs4aDeviceBuilder& builder, const Targets& t,
                   const test::Cs4aPatterns& want, cudaStream_t stream, bool check_selection) {
  if (check_selection) {
    const BlockPattern sel = builder.download_selection(stream);
    expect(same(sel, want.selected), tag + ": selection differs (" + first_difference(sel, want.selected) + ")");
  }
  for (size_t i = 0; i < plan.scales.size(); ++i) {
    const std::string what = tag + " scale " + std::to_string(plan.scales[i].scale);
    BlockPattern got;
    try {
      got = download_cs4a_pattern(plan, static_cast<int>(i), t.views[i], stream);
      validate(got);
    } catch (const Error& e) {
      expect(false, what + ": " + e.what());
      continue;
    }
    expect(same(got, want.mapped[i]), what + ": pattern differs (" + first_difference(got, want.mapped[i]) + ")");
  }
}

void random_cases(cudaStream_t stream, bool quick) {
  std::mt19937 rng(20261130);
  std::vector<test::Cs4aCase> cases = test::cs4a_cases();
  if (quick) cases.resize(2);
  for (const test::Cs4aCase& c : cases) {
    const std::vector<Cs4aMapper> mappers = test::cs4a_later_mappers(c);
    for (int heads : {1, 3, 16, 28}) {
      if (quick && heads > 3) continue;
      const Cs4aPlan plan = make_cs4a_plan(test::pointers(mappers), heads);
      Cs4aDeviceBuilder builder(plan);
      for (int batch : {1, 2, 3}) {
        for (bool ties : {false, true}) {
          const size_t rows = static_cast<size_t>(batch) * heads * plan.num_q_blocks;
          const std::string tag = c.name + " heads " + std::to_string(heads) + " batch " + std::to_string(batch) +
                                  (ties ? " ties" : "");
          // Two builds back to back on one stream (as two layers would), into their own targets.
          const std::vector<float> mass_a = test::cs4a_random_mass(rows, plan.num_k_blocks, rng, ties);
          const std::vector<float> mass_b = test::cs4a_random_mass(rows, plan.num_k_blocks, rng, !ties);
          const DeviceVec<float> dmass_a(mass_a), dmass_b(mass_b);
          Targets ta(plan), tb(plan);
          try {
            builder.build(dmass_a.ptr, batch, ta.views, stream);
            builder.build(dmass_b.ptr, batch, tb.views, stream);
          } catch (const Error& e) {
            expect(false, tag + ": " + e.what());
            continue;
          }
          check_outputs(tag + " (layer a)", plan, builder, ta, test::cs4a_reference(mappers, mass_a, batch, heads),
                        stream, false);
          check_outputs(tag + " (layer b)", plan, builder, tb, test::cs4a_reference(mappers, mass_b, batch, heads),
                        stream, true);
          try {
            builder.check(true);
          } catch (const Error& e) {
            expect(false, tag + ": status: " + e.what());
          }
        }
      }
      std::printf("  %-44s heads %2d: nnz bound per scale", c.name.c_str(), heads);
      for (const Cs4aPlanScale& s : plan.scales) std::printf(" %lld", static_cast<long long>(s.nnz_bound));
      std::printf("\n");
    }
  }
}

void bad_mass_is_reported(cudaStream_t stream) {
  const test::Cs4aCase c = test::cs4a_cases().front();
  const std::vector<Cs4aMapper> mappers = test::cs4a_later_mappers(c);
  const Cs4aPlan plan = make_cs4a_plan(test::pointers(mappers), 2);
  Cs4aDeviceBuilder builder(plan);
  std::mt19937 rng(7);
  const size_t rows = size_t(2) * plan.num_q_blocks;
  auto expect_report = [&](const char* what, std::vector<float> mass, bool reported) {
    const DeviceVec<float> d(mass);
    Targets t(plan);
    bool threw = false;
    std::string msg;
    try {
      builder.build(d.ptr, 1, t.views, stream);
      builder.check(true);
    } catch (const Error& e) {
      threw = true;
      msg = e.what();
    }
    expect(threw == reported, std::string("bad mass: ") + what + (reported ? " not reported" : " reported: " + msg));
    std::printf("  bad mass, %-34s -> %s\n", what, threw ? msg.c_str() : "accepted");
    // The pattern is still well formed (the kernel must never read out of bounds).
    for (size_t i = 0; i < plan.scales.size(); ++i) {
      try {
        const BlockPattern p = download_cs4a_pattern(plan, static_cast<int>(i), t.views[i], stream);
        expect(p.row_offsets.front() == 0 && p.nnz() <= plan.scales[i].nnz_bound, std::string("bad mass: ") + what);
      } catch (const Error& e) {
        expect(false, std::string("bad mass: ") + what + ": " + e.what());
      }
    }
  };
  std::vector<float> good = test::cs4a_random_mass(rows, plan.num_k_blocks, rng, false);
  std::vector<float> nan = good, twice = good, negative = good;
  nan[5] = NAN;
  for (int c = 0; c < plan.num_k_blocks; ++c) twice[static_cast<size_t>(plan.num_k_blocks) + c] *= 2.0f;
  negative[3] = -0.25f;
  expect_report("NaN", nan, true);
  expect_report("good after a report", good, false);
  expect_report("row summing to 2", twice, true);
  expect_report("negative value", negative, true);

  // Argument errors are raised before any launch.
  Targets t(plan);
  bool threw = false;
  try {
    builder.build(nullptr, 1, t.views, stream);
  } catch (const Error&) {
    threw = true;
  }
  expect(threw, "null mass rejected");
  threw = false;
  try {
    const DeviceVec<float> d(good);
    builder.build(d.ptr, 1, std::span<const Cs4aDeviceTarget>(t.views).first(1), stream);
  } catch (const Error&) {
    threw = true;
  }
  expect(threw, "too few targets rejected");
}

}  // namespace

int main() {
  if (test::no_cuda_device()) return test::kSkipped;
  const bool quick = std::getenv("SPARVAR_TEST_QUICK") != nullptr;  // small run for the sanitizers
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  random_cases(stream, quick);
  bad_mass_is_reported(stream);
  CUDA_OK(cudaStreamDestroy(stream));
  return test::finish("test_cs4a_build_cuda");
}

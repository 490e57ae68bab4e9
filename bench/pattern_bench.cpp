// Pattern densities and build times on Infinity's 1024x1024 schedule.
//   pattern_bench            CSLA density table (last 3 scales) and CSLA / CS4A build times
// Densities are geometry only (no model); CS4A's density needs real attention mass, so only its speed
// is measured here, on random peaked masses.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "attention/pattern_cs4a.h"
#include "attention/pattern_csla.h"

using namespace sparvar;

namespace {

template <typename F>
double median_us(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

const char* tile_name(TileShape q, TileShape k) {
  static char buf[64];
  std::snprintf(buf, sizeof buf, "%dx%d q x %dx%d k (%d x %d)", q.h, q.w, k.h, k.w, q.size(), k.size());
  return buf;
}

void density_table(const ScaleSchedule& s) {
  std::printf("CSLA density, %s (%s), own window 3x3 q tiles\n", s.name().c_str(), s.describe().c_str());
  std::printf("cost = listed blocks x full block size / dense pairs; pairs = valid pairs kept\n");
  std::printf("%-30s %5s %4s %4s | %-15s | %-15s | %-15s | %s\n", "tiles", "sinks", "r_j", "pack", "40x40 cost/pairs",
              "48x48 cost/pairs", "64x64 cost/pairs", "last-3 FLOP-weighted cost/pairs");
  const std::pair<TileShape, TileShape> tiles[] = {
      {{8, 16}, {8, 16}}, {{8, 16}, {8, 8}}, {{8, 8}, {8, 8}}};
  for (auto [qt, kt] : tiles) {
    for (int sinks : {4, 6}) {
      for (int r : {1, 2, 4}) {
        for (int pack : {0, 1}) {
          CslaOptions o;
          o.q_tile = qt;
          o.k_tile = kt;
          o.sink_scales = sinks;
          o.window_tokens = r;
          o.packed_scales = pack ? sinks : 0;
          std::printf("%-30s %5d %4d %4s", tile_name(qt, kt), sinks, r, pack ? "yes" : "no");
          PatternDensity all;
          for (int k = s.num_scales() - 3; k < s.num_scales(); ++k) {
            PatternDensity d = measure_density(build_csla(s, k, o));
            all += d;
            std::printf(" | %6.1f%% %6.1f%%", 100 * d.cost_fraction(), 100 * d.pair_fraction());
          }
          std::printf(" | %6.1f%% %6.1f%%\n", 100 * all.cost_fraction(), 100 * all.pair_fraction());
        }
      }
    }
  }
}

std::vector<float> peaked_mass(int heads, int nq, int nk, std::mt19937& rng) {
  std::exponential_distribution<float> e(1.0f);
  std::vector<float> m(size_t(heads) * nq * nk);
  for (size_t r = 0; r < size_t(heads) * nq; ++r) {
    float* row = m.data() + r * nk;
    double sum = 0;
    for (int c = 0; c < nk; ++c) sum += (row[c] = std::pow(e(rng), 4.0f));
    for (int c = 0; c < nk; ++c) row[c] = float(row[c] / sum);
  }
  return m;
}

void timings(const ScaleSchedule& s) {
  const int heads = 28;
  std::printf("\nBuild times (median, this CPU), %d heads\n", heads);
  for (TileShape t : {TileShape{8, 8}, TileShape{8, 16}}) {
    CslaOptions co;
    co.q_tile = co.k_tile = t;
    for (int k = s.num_scales() - 3; k < s.num_scales(); ++k) {
      double us = median_us(9, [&] { (void)build_csla(s, k, co, heads); });
      std::printf("  CSLA %-26s scale %2d: %8.1f us (static, once per resolution)\n", tile_name(t, t), k, us);
    }
    Cs4aOptions o;
    o.q_tile = o.k_tile = t;
    const int kd = o.resolve_decision_scale(s);
    std::mt19937 rng(1);
    for (float tau : {0.9f, 0.95f}) {
      o.tau = tau;
      std::vector<Cs4aMapper> mappers;
      for (int k = kd + 1; k < s.num_scales(); ++k) mappers.emplace_back(s, k, o);
      const ScaleLayouts& dl = mappers.front().decision_layouts();
      std::vector<float> mass = peaked_mass(heads, dl.q.num_blocks(), dl.k.num_blocks(), rng);
      BlockPattern dec;
      double sel = median_us(21, [&] { dec = cs4a_select(mass, heads, dl, o); });
      std::printf("  CS4A %-26s tau %.2f select at scale %d (%d x %d blocks/head): %7.1f us, %.1f blocks/row\n",
                  tile_name(t, t), tau, kd, dl.q.num_blocks(), dl.k.num_blocks(), sel,
                  double(dec.nnz()) / dec.num_rows());
      double total = sel;
      for (const Cs4aMapper& m : mappers) {
        BlockPattern p;
        double us = median_us(21, [&] { p = m.map(dec); });
        total += us;
        std::printf("       map to scale %2d (%4d q blocks/head): %7.1f us, block density %.1f%%\n", m.query_scale(),
                    p.num_q_blocks, us, 100.0 * p.nnz() / (double(p.num_rows()) * p.num_k_blocks));
      }
      double build = median_us(5, [&] { Cs4aMapper m(s, s.num_scales() - 1, o); });
      std::printf("       per image and layer, select + 3 maps: %.1f us (mapper tables, once: %.1f us)\n", total,
                  build);
    }
  }
}

}  // namespace

int main() {
  ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M1);
  density_table(s);
  timings(s);
  return 0;
}

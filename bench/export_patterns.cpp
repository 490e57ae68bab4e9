// Exports real SparVAR block patterns for the kernel benchmark (bench/attention_bench.py --patterns DIR):
// CSLA with default options on Infinity's 1024x1024 schedule, last three scales (40x40, 48x48, 64x64), at
// 64x64 (8x8 tiles) and 128x128 (8x16 tiles) blocks. Per (scale, block) it writes, as int32 .npy files:
//   csla_s{side}_b{blk}_row_offsets.npy  [num_q_blocks + 1]   (shared across heads)
//   csla_s{side}_b{blk}_col_blocks.npy   [nnz]
//   csla_s{side}_b{blk}_k_valid.npy      [num_k_blocks]
//   csla_s{side}_b{blk}_q_valid.npy      [num_q_blocks]
// plus index.txt: one line per pattern "side blk num_q_blocks num_k_blocks nnz q_tokens k_tokens cost pairs".
//   export_patterns OUT_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "attention/pattern_csla.h"
#include "io/npy.h"

using namespace sparvar;

namespace {

void write_i32(const std::filesystem::path& path, const std::vector<int32_t>& v) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::I32);
  std::copy(v.begin(), v.end(), t.data_as<int32_t>());
  io::write_npy(path, t);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: export_patterns OUT_DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  const ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M1);
  std::ofstream index(dir / "index.txt");
  index << "# side blk num_q_blocks num_k_blocks nnz q_tokens k_tokens cost_fraction pair_fraction\n";
  for (int k = s.num_scales() - 3; k < s.num_scales(); ++k) {
    const int side = s.grid(k).h;
    for (int blk : {64, 128}) {
      CslaOptions o;  // defaults: sinks, windows, 3x3 own-scale tiles
      if (blk == 128) o.q_tile = o.k_tile = TileShape{8, 16};
      const BlockSparseLayout l = build_csla(s, k, o);
      const PatternDensity d = measure_density(l);
      const std::string stem = "csla_s" + std::to_string(side) + "_b" + std::to_string(blk) + "_";
      write_i32(dir / (stem + "row_offsets.npy"), l.pattern.row_offsets);
      write_i32(dir / (stem + "col_blocks.npy"), l.pattern.col_blocks);
      write_i32(dir / (stem + "k_valid.npy"), l.k_block_valid);
      write_i32(dir / (stem + "q_valid.npy"), l.q_block_valid);
      int64_t qtok = 0, ktok = 0;
      for (int v : l.q_block_valid) qtok += v;
      for (int v : l.k_block_valid) ktok += v;
      index << side << ' ' << blk << ' ' << l.pattern.num_q_blocks << ' ' << l.pattern.num_k_blocks << ' '
            << l.pattern.nnz() << ' ' << qtok << ' ' << ktok << ' ' << d.cost_fraction() << ' '
            << d.pair_fraction() << '\n';
      std::printf("scale %dx%d blk %d: %d q blocks x %d k blocks, nnz %lld, cost %.3f, pairs %.3f\n", side, side,
                  blk, l.pattern.num_q_blocks, l.pattern.num_k_blocks, static_cast<long long>(l.pattern.nnz()),
                  d.cost_fraction(), d.pair_fraction());
    }
  }
  return 0;
}

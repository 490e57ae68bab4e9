// Host side of the block-sparse attention: argument validation, variant choice and the launches.
#include "block_sparse_attention.h"

#include "core/error.h"
#include "kernel_launch.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace sparvar {
namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("block_sparse_attention: {}: {}", what, cudaGetErrorString(status));
}

bool is_block_size(int b) { return b == 64 || b == 128; }

// Whether a pattern lists at least 90% of all blocks (nnz known: the caller passed it; 0 for device-built patterns).
long long pattern_rows(const BlockSparseAttentionArgs& a) {
  return static_cast<long long>(a.pattern_heads) * (a.nq / a.q_block);
}

bool near_dense(const BlockSparseAttentionArgs& a) {
  const long long rows = pattern_rows(a);
  return a.nnz > 0 && 10ll * a.nnz >= 9ll * rows * (a.nk / a.k_block);
}

// A 64 x 64 pattern that lists every block (a dense scale): ascending rows of kb blocks are all 0 .. kb-1, so every
// row offset that is a multiple of kb starts the same list, and the shared kernel can read the same CSR as 128-row
// query blocks over 64-token key blocks (AUTO does: v5's plain walk instead of planning pairs of lists, the same
// work; H100 session 14).
bool fully_dense(const BlockSparseAttentionArgs& a) {
  return a.nnz > 0 && a.nnz == pattern_rows(a) * (a.nk / a.k_block);
}

// What AUTO runs without block_mass (H100 measurements, bench/attention_results.md):
//  - q_block 128: SHARED (as fast as WIDE or up to 19% faster: one K/V stream per query block, session 9);
//  - q_block and k_block 64, near-dense pattern: SHARED on pairs of query blocks (pair_lists.cuh; dense 8-10% faster
//    than WIDE, 0.88-1.0x cuDNN, session 12). On sparser lists pairs measured within +-3% of WIDE (CSLA) or 5-13%
//    slower (random lists, whose neighbouring rows share few blocks; both consumers meet at every tile start);
//  - else WIDE (2-9% faster than PIPELINED on Infinity's CSLA masks, session 6).
// SPARVAR_BSA_KERNEL=pipelined|wide|shared (read once) forces one for A/B runs of the whole engine (shared only
// where it applies, else wide).
int auto_kernel(int q_block, int k_block, bool near_dense) {
  static const int forced = [] {
    const char* env = std::getenv("SPARVAR_BSA_KERNEL");
    if (!env || !*env) return int{BSA_KERNEL_AUTO};
    const std::string_view v(env);
    if (v == "pipelined") return int{BSA_KERNEL_PIPELINED};
    if (v == "wide") return int{BSA_KERNEL_WIDE};
    if (v == "shared") return int{BSA_KERNEL_SHARED};
    fail("SPARVAR_BSA_KERNEL={}: expected pipelined, wide or shared", env);
  }();
  const bool pairs = q_block == 64 && k_block == 64;
  if (forced == BSA_KERNEL_AUTO)
    return q_block == 128 || (pairs && near_dense) ? int{BSA_KERNEL_SHARED} : int{BSA_KERNEL_WIDE};
  return forced == BSA_KERNEL_SHARED && q_block != 128 && !pairs ? int{BSA_KERNEL_WIDE} : forced;
}

// What the shared kernel's split tail (split_tail.h) needs to know: near-dense lists are all about as long, so a
// tile's steps follow from nnz. SPARVAR_BSA_SPLIT=on splits whenever the last wave is partial (tests), =off never
// (A/B runs); read at every call so that a test can switch it.
void set_split_tail(const BlockSparseAttentionArgs& a, attention_cuda::LaunchShape& shape) {
  const char* env = std::getenv("SPARVAR_BSA_SPLIT");
  const std::string_view mode = env ? env : "";
  SPARVAR_CHECK(mode.empty() || mode == "on" || mode == "off" || mode == "auto",
                "SPARVAR_BSA_SPLIT={}: expected on, off or auto", mode);
  shape.split_always = mode == "on";
  shape.split_never = mode == "off";
  if (!near_dense(a)) return;
  const long long keys_per_row = static_cast<long long>(a.nnz) * a.k_block / pattern_rows(a);
  shape.uniform_steps = static_cast<int>((keys_per_row + 127) / 128);
}

void validate(const BlockSparseAttentionArgs& a) {
  SPARVAR_CHECK(a.q && a.k && a.v && a.out, "block_sparse_attention: q, k, v and out must be device pointers");
  auto aligned16 = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  SPARVAR_CHECK(aligned16(a.q) && aligned16(a.k) && aligned16(a.v) && aligned16(a.out),
                "block_sparse_attention: q, k, v and out must start at 16-byte boundaries (TMA loads, 16-byte stores)");
  SPARVAR_CHECK(a.row_offsets && a.col_blocks, "block_sparse_attention: row_offsets and col_blocks are required");
  SPARVAR_CHECK(a.batch > 0 && a.heads > 0, "block_sparse_attention: batch {} and heads {} must be positive",
                a.batch, a.heads);
  SPARVAR_CHECK(a.head_dim == 64 || a.head_dim == 128, "block_sparse_attention: head_dim {} (64 or 128)",
                a.head_dim);
  SPARVAR_CHECK(is_block_size(a.q_block) && is_block_size(a.k_block),
                "block_sparse_attention: q_block {} / k_block {} (each 64 or 128)", a.q_block, a.k_block);
  SPARVAR_CHECK(a.nq > 0 && a.nq % a.q_block == 0, "block_sparse_attention: nq {} is not a positive multiple of q_block {}",
                a.nq, a.q_block);
  SPARVAR_CHECK(a.nk > 0 && a.nk % a.k_block == 0, "block_sparse_attention: nk {} is not a positive multiple of k_block {}",
                a.nk, a.k_block);
  SPARVAR_CHECK(a.pattern_heads == 1 || a.pattern_heads == a.heads,
                "block_sparse_attention: pattern_heads {} (1 or heads = {})", a.pattern_heads, a.heads);
  SPARVAR_CHECK(a.nnz >= 0, "block_sparse_attention: nnz {} is negative", a.nnz);
  SPARVAR_CHECK(!a.block_mass || a.nnz > 0, "block_sparse_attention: block_mass needs nnz (entries of col_blocks)");
  SPARVAR_CHECK(std::isfinite(a.softmax_scale) && a.softmax_scale > 0.f,
                "block_sparse_attention: softmax_scale {} must be finite and positive", a.softmax_scale);
  SPARVAR_CHECK(a.kernel >= BSA_KERNEL_AUTO && a.kernel <= BSA_KERNEL_SHARED && a.kernel != 3,
                "block_sparse_attention: kernel {} (0 auto, 1 simple, 2 pipelined, 4 wide, 5 shared; 3, the paired "
                "kernel, was retired)",
                a.kernel);
  SPARVAR_CHECK(a.kernel != BSA_KERNEL_SHARED ||
                    ((a.q_block == 128 || (a.q_block == 64 && a.k_block == 64)) && !a.block_mass),
                "block_sparse_attention: the shared kernel needs q_block 128, or q_block and k_block 64 (got {} / {}), "
                "and no block_mass", a.q_block, a.k_block);
  SPARVAR_CHECK(a.kv_rows == 0 || a.kv_rows >= a.nk, "block_sparse_attention: kv_rows {} is below nk {}", a.kv_rows,
                a.nk);
  SPARVAR_CHECK(!a.out_rows || a.out_tokens > 0, "block_sparse_attention: out_rows needs out_tokens > 0, got {}",
                a.out_tokens);
  const long long rows = static_cast<long long>(a.batch) * a.heads *
                         std::max({a.nq, a.nk, a.kv_rows, a.out_rows ? a.out_tokens : 0}) * a.head_dim;
  SPARVAR_CHECK(rows < (1ll << 40), "block_sparse_attention: tensors too large");
}

}  // namespace

void block_sparse_attention(const BlockSparseAttentionArgs& args, cudaStream_t stream) {
  validate(args);
  attention_cuda::KernelParams p{};
  p.q = static_cast<const __nv_bfloat16*>(args.q);
  p.k = static_cast<const __nv_bfloat16*>(args.k);
  p.v = static_cast<const __nv_bfloat16*>(args.v);
  p.out = static_cast<__nv_bfloat16*>(args.out);
  p.heads = args.heads;
  p.nq = args.nq;
  p.nk = args.nk;
  p.q_block = args.q_block;
  p.k_block = args.k_block;
  p.num_q_blocks = args.nq / args.q_block;
  p.row_offsets = args.row_offsets;
  p.col_blocks = args.col_blocks;
  p.nnz = args.nnz;
  p.pattern_heads = args.pattern_heads;
  p.k_valid = args.k_valid;
  p.q_valid = args.q_valid;
  p.scale_log2 = args.softmax_scale * 1.4426950408889634f;
  p.block_mass = args.block_mass;
  p.kv_rows = args.kv_rows > 0 ? args.kv_rows : args.nk;
  p.out_rows = args.out_rows;
  p.out_tokens = args.out_tokens;
  if (p.block_mass) {
    const size_t entries = static_cast<size_t>(args.batch) * (args.pattern_heads == 1 ? args.heads : 1) * args.nnz;
    check_cuda(cudaMemsetAsync(p.block_mass, 0, entries * sizeof(float), stream), "clear block_mass");
  }
  attention_cuda::LaunchShape shape{args.batch, args.head_dim, args.k_block};
  set_split_tail(args, shape);
  const bool pipelined_ok = attention_cuda::pipelined_supports(shape);
  if (args.kernel >= BSA_KERNEL_PIPELINED) {
    static constexpr const char* kNames[] = {"auto", "simple", "pipelined", "(retired)", "wide", "shared"};
    SPARVAR_CHECK(pipelined_ok, "block_sparse_attention: the {} kernel does not support head_dim {} k_block {} "
                  "q_block {}", kNames[args.kernel], args.head_dim, args.k_block, args.q_block);
  }
  int kernel = args.kernel == BSA_KERNEL_AUTO && !p.block_mass ? auto_kernel(args.q_block, args.k_block, near_dense(args)) : args.kernel;
  if (args.kernel == BSA_KERNEL_AUTO && kernel == BSA_KERNEL_SHARED && args.q_block == 64 && args.k_block == 64 &&
      args.nq % 128 == 0 && fully_dense(args)) {
    p.q_block = 128;
    p.num_q_blocks = args.nq / 128;
  }
  if (kernel == BSA_KERNEL_SHARED && !attention_cuda::shared_supports(shape, p)) {
    SPARVAR_CHECK(args.kernel == BSA_KERNEL_AUTO, "block_sparse_attention: the shared kernel takes pairs of 64-row "
                  "query blocks only up to {} key blocks of 64 (nk {})", attention_cuda::shared_pair_max_k_blocks(shape),
                  args.nk);
    kernel = BSA_KERNEL_WIDE;
  }
  if (kernel == BSA_KERNEL_SHARED) {
    check_cuda(attention_cuda::launch_shared(shape, p, stream), "shared kernel launch");
  } else if (kernel == BSA_KERNEL_WIDE && !p.block_mass && pipelined_ok) {
    check_cuda(attention_cuda::launch_wide(shape, p, stream), "wide kernel launch");
  } else if (kernel != BSA_KERNEL_SIMPLE && pipelined_ok) {
    check_cuda(attention_cuda::launch_pipelined(shape, p, stream), "pipelined kernel launch");
  } else {
    check_cuda(attention_cuda::launch_simple(shape, p, stream), "simple kernel launch");
  }
}

void check_block_sparse_pattern(const int* row_offsets, const int* col_blocks, int rows, int num_k_blocks) {
  SPARVAR_CHECK(rows > 0 && row_offsets[0] == 0, "block-sparse pattern: row_offsets[0] must be 0");
  for (int r = 0; r < rows; ++r) {
    const int s = row_offsets[r], e = row_offsets[r + 1];
    SPARVAR_CHECK(e > s, "block-sparse pattern: row {} is empty (every query block needs a key block)", r);
    for (int i = s; i < e; ++i) {
      SPARVAR_CHECK(col_blocks[i] >= 0 && col_blocks[i] < num_k_blocks,
                    "block-sparse pattern: row {} lists key block {} of {}", r, col_blocks[i], num_k_blocks);
      SPARVAR_CHECK(i == s || col_blocks[i] > col_blocks[i - 1],
                    "block-sparse pattern: row {} is not strictly ascending at entry {}", r, i - s);
    }
  }
}

}  // namespace sparvar

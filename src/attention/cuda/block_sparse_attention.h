// Block-sparse attention on Hopper (sm_90a): each query block walks its CSR list of key blocks with
// online softmax; dense attention is the same call with every key block listed.
//
// Layout: q/out [B*H, nq, D], k/v [B*H, nk, D], bf16, row-major (D contiguous), each starting at a 16-byte
// boundary; tokens already tile-ordered and padded to whole blocks by the caller.
//
// Semantics the caller can rely on:
//  - keys past k_valid[kb] inside key block kb are masked (-inf); a key block with k_valid 0 contributes nothing;
//  - query padding rows are computed like any other row (finite for finite inputs): the caller drops them;
//  - a query row whose listed blocks hold no valid key (or an empty CSR row) gets an all-zero output;
//  - block_mass (optional) receives, for each (batch, head, listed entry e of col_blocks), the share of the
//    query block's softmax mass that falls in that key block, averaged over the block's valid queries
//    (q_valid). Its layout follows col_blocks: entry index e is the position in col_blocks, so
//      pattern_heads == 1:      block_mass[(b*heads + h) * nnz + e]
//      pattern_heads == heads:  block_mass[b * nnz + e]   (head h's entries are its own slice of col_blocks)
//    i.e. [batch*heads, nnz-of-its-pattern-head] laid out one after another. The call clears it first.
#pragma once

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

// Which kernel runs. SIMPLE: the phase-1 reference/fallback (block_mass too).
// PIPELINED: the warp-specialised persistent TMA/wgmma kernel (every head dim / block size; block_mass through a
// second K pass in its own instantiation, so calls without it pay nothing).
// 3 is unused: it was the "paired" kernel (two 64-row query blocks sharing the union of their lists), measured no
// faster than PIPELINED and retired (docs/kernel_notes.md).
// WIDE (v4): PIPELINED's CTA with 128 keys (two listed 64-token blocks) per consumer step; every head dim / block
// size, in place too; a call with block_mass runs PIPELINED.
// SHARED (v5): one K/V stream per 128-row tile, read by both consumer warpgroups of the CTA (FlashAttention-3's
// CTA): a 128-row query block, or two 64-row query blocks whose lists are walked as one stream (q_block = k_block =
// 64, up to 214 key blocks at head_dim 128); no block_mass (rejected).
// AUTO: without block_mass SHARED for q_block 128 and for near-dense 64 x 64 patterns (nnz >= 90% of all blocks; one
// that lists every block runs as 128-row query blocks when nq is a multiple of 128), else WIDE; PIPELINED with
// block_mass. The shared kernel may split a launch's last partial wave over all SMs (split_tail.h;
// SPARVAR_BSA_SPLIT=off|on|auto, read at every call: never, whenever the last wave is partial, where it pays).
// SPARVAR_BSA_KERNEL=pipelined|wide|shared (read once per process) sets what AUTO runs without block_mass, for A/B
// runs of the whole engine.
enum BlockSparseKernel {
  BSA_KERNEL_AUTO = 0,
  BSA_KERNEL_SIMPLE = 1,
  BSA_KERNEL_PIPELINED = 2,
  BSA_KERNEL_WIDE = 4,
  BSA_KERNEL_SHARED = 5
};

struct BlockSparseAttentionArgs {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  int batch, heads, head_dim;  // head_dim 64 or 128
  int nq, nk;                  // multiples of q_block / k_block
  int q_block, k_block;        // (q, k) in {(64,64), (64,128), (128,64), (128,128)}
  const int* row_offsets;      // device, [pattern_heads * nq/q_block + 1], row_offsets[0] == 0
  const int* col_blocks;       // device, key-block ids, ascending within a row
  int nnz;                     // entries of col_blocks (= row_offsets[last]); needed for block_mass's size
  int pattern_heads;           // 1 (shared by all heads) or == heads
  const int* k_valid;          // device, optional [nk/k_block]: valid keys per key block; null = all valid
  const int* q_valid;          // device, optional [nq/q_block]: valid queries per query block (block_mass only)
  float softmax_scale;
  float* block_mass;           // device, optional (see above)
  int kernel;                  // BlockSparseKernel
  // In-place operands (optional; zero = off). kv_rows: rows per (batch*head) of k and v when they are views of
  // a longer buffer (a KV cache [B*H, kv_rows, D] whose first nk rows are the keys); 0 = nk.
  // out_rows: device [nq], the token each query slot holds (-1: padding, not written); with it, out is
  // token-major [batch, out_tokens, heads, head_dim] (what the output projection reads) instead of [B*H, nq, D].
  // Simple and pipelined kernels only.
  int kv_rows;
  const int* out_rows;
  int out_tokens;
};

// ctypes entry: 0 on success, else non-zero with the message in sparvar_last_error().
int sparvar_block_sparse_attention(const struct BlockSparseAttentionArgs* args, cudaStream_t stream);
const char* sparvar_last_error(void);

#ifdef __cplusplus
}  // extern "C"

namespace sparvar {
// Validates the arguments (throws sparvar::Error naming the bad field before any launch) and launches on
// `stream`. Device-side pattern contents are not read here: see check_block_sparse_pattern.
void block_sparse_attention(const BlockSparseAttentionArgs& args, cudaStream_t stream);

// Host-side check of a CSR pattern (throws sparvar::Error): monotone offsets, no empty row, ids in range and
// strictly ascending within a row. Patterns are built once per resolution, so callers check them once there.
void check_block_sparse_pattern(const int* row_offsets, const int* col_blocks, int rows, int num_k_blocks);
}  // namespace sparvar
#endif

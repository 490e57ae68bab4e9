// Which work tiles a lane of the persistent kernels takes, and how its producer tells its consumer.
//
// Static: lane s takes tiles s, s + slots, s + 2 slots, ... (head-major order). Its cost is fixed by the tile index,
// and on SparVAR's patterns the lists are longer in some query blocks than others: the stride keeps landing on the
// same kind of rows, so some lanes get far more keys than others. Measured on the CSLA lists of the last three
// scales (64-token blocks, 56 batch x heads, 264 lanes), the busiest lane carries 17-20% more than the mean.
//
// Dynamic: lane s still starts with tile s, then takes the next unclaimed tile in head-major order from a global
// counter whenever its producer starts a tile, so a lane that drew short lists takes more of them. The busiest lane
// then carries ~4-15% more than the mean (a simulation with the same lists), and the tiles in flight still come
// from a few (batch, head) pairs at a time, so their keys stay in L2, as with the static order.
//
// The counter needs no reset between launches: each launch makes exactly num_tiles fetches (every lane that has a
// first tile fetches until a fetch fails, once per failure, and succeeds num_tiles - slots times), so the fetch
// that returns num_tiles - 1 is the launch's last, and its thread puts the counter back to 0 for the next launch on
// the stream. The counter is therefore private to one stream (stream_tile_counter in tile_counter.cu hands them out).
#pragma once

#include <cstdint>

#include <cutlass/arch/barrier.h>

namespace sparvar::attention_cuda {

// An int in shared memory handed between warps beside an mbarrier: st / ld.volatile.shared, compiler barriers both
// (the mbarrier asm carries no memory clobber, so a plain access could move across the wait or the arrive). The
// shared state space matters: through a generic pointer nvcc emits LD/ST.E.STRONG.SYS (generic addressing, slower).
__device__ __forceinline__ void publish_shared(int* p, int v) {
  asm volatile("st.volatile.shared.u32 [%0], %1;" ::"r"(static_cast<uint32_t>(__cvta_generic_to_shared(p))), "r"(v)
               : "memory");
}
__device__ __forceinline__ int read_shared(const int* p) {
  int v;
  asm volatile("ld.volatile.shared.u32 %0, [%1];"
               : "=r"(v)
               : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(p)))
               : "memory");
  return v;
}

// The lane's tile after `tile`: static when counter is null.
__device__ __forceinline__ int next_tile(int* counter, int num_tiles, int num_slots, int tile) {
  if (!counter) return tile + num_slots;
  const int taken = atomicAdd(counter, 1);
  if (taken == num_tiles - 1) atomicExch(counter, 0);  // this launch's last fetch (see above)
  return num_slots + taken;
}

// A two-entry ring of tile ids in shared memory: the producer posts each tile it starts (-1 when it has no more)
// with the length of its list, the consumer warpgroup takes them in order. full: one producer arrival; empty: the
// consumer's 128 threads. The length travels with the id so that a consumer starts a tile without reading the CSR
// offsets from global memory (a dependent load at every tile start, with the tensor cores idle). Tiles of two
// query blocks with their lists merged (pair_lists.cuh) also carry how the stream splits between the consumers.
struct TileMailbox {
  uint64_t full[2], empty[2];
  int id[2], count[2], common[2], first_own[2];
};
struct PostedTile {
  int id, count;   // count: 64-token key blocks streamed
  int common = 0;  // pair tiles: 128-key units both consumers take, then first_own units of consumer 0's own
  int first_own = 0;
};

__device__ __forceinline__ void init_tile_mailbox(TileMailbox& m) {
  for (int s = 0; s < 2; ++s) {
    cutlass::arch::ClusterBarrier::init(&m.full[s], 1);
    cutlass::arch::ClusterBarrier::init(&m.empty[s], 128);
  }
}

// One side's position in the mailbox ring.
struct MailboxPos {
  int slot = 0;
  uint32_t phase = 0;
  __device__ void advance() {
    slot ^= 1;
    if (slot == 0) phase ^= 1;
  }
};

__device__ __forceinline__ void post_tile(TileMailbox& m, MailboxPos& pos, const PostedTile& t) {
  cutlass::arch::ClusterBarrier::wait(&m.empty[pos.slot], pos.phase ^ 1);
  publish_shared(&m.id[pos.slot], t.id);
  publish_shared(&m.count[pos.slot], t.count);
  publish_shared(&m.common[pos.slot], t.common);
  publish_shared(&m.first_own[pos.slot], t.first_own);
  cutlass::arch::ClusterBarrier::arrive(&m.full[pos.slot]);  // release: the id is visible to whoever waits
  pos.advance();
}

__device__ __forceinline__ PostedTile take_tile(TileMailbox& m, MailboxPos& pos) {
  cutlass::arch::ClusterBarrier::wait(&m.full[pos.slot], pos.phase);
  const PostedTile t{read_shared(&m.id[pos.slot]), read_shared(&m.count[pos.slot]), read_shared(&m.common[pos.slot]),
                     read_shared(&m.first_own[pos.slot])};
  cutlass::arch::ClusterBarrier::arrive(&m.empty[pos.slot]);
  pos.advance();
  return t;
}

}  // namespace sparvar::attention_cuda

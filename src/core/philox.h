// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based RNG.
// Every output is a pure function of (counter, key), so element i of a random buffer can be produced by any
// thread on the CPU or the GPU without sequential state, and a seed reproduces an image bit for bit.
//
// Layout used across sparvar: element i of the stream (seed, offset) is word (i % 4) of
// philox4x32_10(counter = {lo(i/4), hi(i/4), lo(offset), hi(offset)}, key = {lo(seed), hi(seed)}).
// Uniforms take the top 24 bits of that word; normals pair words (0,1) and (2,3) of a block via Box-Muller.
// Uniform values are bit-exact everywhere; normals go through logf/cosf/sinf and may differ by a few ulp
// between host and device math libraries.
#pragma once

#include <cstdint>
#include <cmath>

#ifdef __CUDACC__
#define SPARVAR_HD __host__ __device__
#else
#define SPARVAR_HD
#endif

namespace sparvar {

struct PhiloxCounter {
  uint32_t v[4];
};
struct PhiloxKey {
  uint32_t v[2];
};

namespace philox_detail {
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

SPARVAR_HD inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

SPARVAR_HD inline PhiloxCounter single_round(PhiloxCounter c, PhiloxKey k) {
  uint32_t hi0, lo0, hi1, lo1;
  mulhilo(kMul0, c.v[0], hi0, lo0);
  mulhilo(kMul1, c.v[2], hi1, lo1);
  return PhiloxCounter{{hi1 ^ c.v[1] ^ k.v[0], lo1, hi0 ^ c.v[3] ^ k.v[1], lo0}};
}
}  // namespace philox_detail

// Ten rounds; the key is bumped by the Weyl constants between rounds.
SPARVAR_HD inline PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      key.v[0] += philox_detail::kWeyl0;
      key.v[1] += philox_detail::kWeyl1;
    }
    counter = philox_detail::single_round(counter, key);
  }
  return counter;
}

// The block of four words that holds element `index` of stream (seed, offset).
SPARVAR_HD inline PhiloxCounter philox_block(uint64_t seed, uint64_t offset, uint64_t block) {
  const PhiloxCounter counter{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                               static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32)}};
  const PhiloxKey key{{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
  return philox4x32_10(counter, key);
}

SPARVAR_HD inline uint32_t philox_u32(uint64_t seed, uint64_t offset, uint64_t index) {
  return philox_block(seed, offset, index >> 2).v[index & 3];
}

// [0, 1) with 24 random bits: every value is exactly representable in fp32, so host and device agree.
SPARVAR_HD inline float u32_to_uniform(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}
// (0, 1]: safe for log().
SPARVAR_HD inline float u32_to_uniform_open0(uint32_t bits) {
  return static_cast<float>((bits >> 8) + 1u) * (1.0f / 16777216.0f);
}

SPARVAR_HD inline float uniform_float(uint64_t seed, uint64_t offset, uint64_t index) {
  return u32_to_uniform(philox_u32(seed, offset, index));
}

// Box-Muller on the pair (2j, 2j+1) of a block: element 2j is r*cos(theta), element 2j+1 is r*sin(theta).
SPARVAR_HD inline float normal_from_block(const PhiloxCounter& block, unsigned lane) {
  const unsigned pair = lane & 2u;
  const float u1 = u32_to_uniform_open0(block.v[pair]);
  const float u2 = u32_to_uniform(block.v[pair + 1]);
  const float radius = sqrtf(-2.0f * logf(u1));
  const float theta = 6.2831853071795864769f * u2;
  return (lane & 1u) ? radius * sinf(theta) : radius * cosf(theta);
}

SPARVAR_HD inline float normal_float(uint64_t seed, uint64_t offset, uint64_t index) {
  return normal_from_block(philox_block(seed, offset, index >> 2), static_cast<unsigned>(index & 3));
}

// Host helper that fills buffers of the stream (seed, offset): out[j] = element (first + j). Uniform and
// normal fills of the same (seed, offset) share words, so callers give independent draws different offsets.
class PhiloxStream {
 public:
  PhiloxStream(uint64_t seed, uint64_t offset) : seed_(seed), offset_(offset) {}

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }

  void fill_uniform(float* out, uint64_t n, uint64_t first = 0) const {
    for (uint64_t j = 0; j < n; ++j) out[j] = uniform_float(seed_, offset_, first + j);
  }

  void fill_normal(float* out, uint64_t n, uint64_t first = 0) const {
    uint64_t j = 0;
    while (j < n) {
      const uint64_t index = first + j;
      const PhiloxCounter block = philox_block(seed_, offset_, index >> 2);
      for (unsigned lane = static_cast<unsigned>(index & 3); lane < 4 && j < n; ++lane, ++j)
        out[j] = normal_from_block(block, lane);
    }
  }

 private:
  uint64_t seed_;
  uint64_t offset_;
};

}  // namespace sparvar

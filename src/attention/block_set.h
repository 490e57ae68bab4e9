// A fixed-size set of block ids as a bitset: unions are word ORs and reading it back yields the ids
// already sorted and unique, which is exactly what a CSR row needs. Used by the pattern builders.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace sparvar {

class BlockSet {
 public:
  explicit BlockSet(int size = 0) { reset(size); }
  void reset(int size) {
    size_ = size;
    words_.assign((size + 63) / 64, 0);
  }
  void clear() { std::fill(words_.begin(), words_.end(), 0); }
  int size() const { return size_; }
  // The bits, block i at bit i % 64 of word i / 64 (bits past size() are 0).
  const std::vector<uint64_t>& words() const { return words_; }
  void set(int i) { words_[i >> 6] |= uint64_t{1} << (i & 63); }
  bool test(int i) const { return (words_[i >> 6] >> (i & 63)) & 1; }
  // Sets [begin, end).
  void set_range(int begin, int end) {
    for (int i = begin; i < end;) {
      const int bit = i & 63;
      const int n = std::min(64 - bit, end - i);
      const uint64_t mask = (n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1)) << bit;
      words_[i >> 6] |= mask;
      i += n;
    }
  }
  // Union with a set of the same size or smaller (ids beyond `other` stay as they are).
  void merge(const BlockSet& other) {
    for (size_t w = 0; w < other.words_.size(); ++w) words_[w] |= other.words_[w];
  }
  int count() const {
    int n = 0;
    for (uint64_t w : words_) n += std::popcount(w);
    return n;
  }
  // Appends the ids in ascending order.
  void append_to(std::vector<int32_t>& out) const {
    for (size_t w = 0; w < words_.size(); ++w)
      for (uint64_t bits = words_[w]; bits; bits &= bits - 1)
        out.push_back(static_cast<int32_t>(w * 64 + std::countr_zero(bits)));
  }

 private:
  int size_ = 0;
  std::vector<uint64_t> words_;
};

}  // namespace sparvar

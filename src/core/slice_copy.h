// The geometry of Backend::copy_slice (src written into dst at an offset along one dimension), validated once
// for both backends: the copy is `rows` contiguous runs of src_pitch bytes, run r going from
// src + r * src_pitch to dst + r * dst_pitch + dst_start.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/tensor.h"

namespace sparvar {

struct SliceCopy {
  int64_t rows = 0;        // product of the dimensions before `dim`
  int64_t src_pitch = 0;   // bytes of one run of src (= its bytes per row)
  int64_t dst_pitch = 0;   // bytes of one row of dst
  int64_t dst_start = 0;   // byte offset of the slab inside a row of dst
};

// Throws Error (naming op) unless src and dst have the same dtype and rank, equal sizes outside `dim`, and
// offset >= 0 with offset + src.dim(dim) <= dst.dim(dim).
SliceCopy slice_copy_geometry(const Tensor& src, const Tensor& dst, int dim, int64_t offset, std::string_view op);

}  // namespace sparvar

// What a checkpoint says about one tensor, known without reading its data.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "core/tensor.h"

namespace sparvar::io {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t bytes = 0;  // numel * dtype size
};

}  // namespace sparvar::io

// Activation buffers planned once per image: each named buffer is reserved at its largest size before the
// scale loop and handed out as views of the needed shape, so the loop itself never allocates.
#pragma once

#include <algorithm>
#include <map>
#include <string>

#include "backend/backend.h"
#include "core/error.h"

namespace sparvar::infinity {

class Workspace {
 public:
  Workspace(Backend& backend, DType dtype) : backend_(backend), dtype_(dtype) {}

  void reserve(const std::string& name, int64_t numel) {
    auto it = buffers_.find(name);
    if (it != buffers_.end() && it->second.numel() >= numel) return;
    buffers_[name] = backend_.empty({std::max<int64_t>(numel, 1)}, dtype_);
  }
  // A view of buffer `name` with this shape; the buffer must have been reserved large enough.
  Tensor take(const std::string& name, const Shape& shape) const {
    auto it = buffers_.find(name);
    SPARVAR_CHECK(it != buffers_.end() && it->second.numel() >= shape_numel(shape),
                  "internal: workspace buffer '{}' not reserved for {}", name, shape_string(shape));
    return it->second.slice0(0, shape_numel(shape)).view(shape);
  }
  size_t bytes() const {
    size_t total = 0;
    for (const auto& [name, t] : buffers_) total += t.nbytes();
    return total;
  }

 private:
  Backend& backend_;
  DType dtype_;
  std::map<std::string, Tensor> buffers_;
};

}  // namespace sparvar::infinity

// Named ranges on the profiler's timeline (NVTX on CUDA builds, nothing otherwise), so a profiler can pick out
// one phase of a run: `ncu --nvtx --nvtx-include "vae/"` times only the decoder's kernels, "scale 64x64/" one scale.
#pragma once

#include <string>

namespace sparvar {

void trace_push(const char* name);
void trace_pop();

// Pushes a range for its lifetime.
class TraceRange {
 public:
  explicit TraceRange(const char* name) { trace_push(name); }
  explicit TraceRange(const std::string& name) { trace_push(name.c_str()); }
  ~TraceRange() { trace_pop(); }
  TraceRange(const TraceRange&) = delete;
  TraceRange& operator=(const TraceRange&) = delete;
};

}  // namespace sparvar

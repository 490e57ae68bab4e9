#include "models/pipeline/attention_mode.h"

#include <algorithm>

namespace sparvar::pipeline {

std::string attention_mode_name(AttentionMode mode) { return std::string(infinity::attention_mode_name(mode)); }

std::vector<std::string> attention_mode_names() { return {"dense", "csla", "cs4a"}; }

std::unique_ptr<infinity::AttentionRunner> make_runner(AttentionMode mode, Backend& backend,
                                                       const infinity::InfinityConfig& config,
                                                       const ScaleSchedule& schedule, int batch) {
  infinity::SparseAttentionOptions options;  // documented fidelity-first defaults
  options.max_batch = std::max(batch, 1);
  return infinity::make_attention_runner(backend, mode, options, schedule, static_cast<int>(config.num_heads),
                                         static_cast<int>(config.head_dim()));
}

}  // namespace sparvar::pipeline

// The one place that turns an attention mode into an AttentionRunner for a generation: dense (the
// backend's attention) or SparVAR's csla / cs4a (infinity::make_attention_runner, built for the schedule).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "attention/schedule.h"
#include "backend/backend.h"
#include "models/infinity/config.h"
#include "models/infinity/sparse_attention_runner.h"

namespace sparvar::pipeline {

using infinity::AttentionMode;
using infinity::parse_attention_mode;

std::string attention_mode_name(AttentionMode mode);
std::vector<std::string> attention_mode_names();

// A runner for `mode` at this schedule; the runner's scratch is sized for `batch` rows (2 per image with CFG).
std::unique_ptr<infinity::AttentionRunner> make_runner(AttentionMode mode, Backend& backend,
                                                       const infinity::InfinityConfig& config,
                                                       const ScaleSchedule& schedule, int batch);

}  // namespace sparvar::pipeline

// Which image sizes a model can draw: the prefixes of Infinity's scale templates (1M ladders, every aspect
// ratio) whose last grid fits the model (at most the trained grid's tokens, at most num_lvl scales), times the
// pixels per token (VAE patch, x2 when 2x2-patchified). The manifest's own schedule is always supported.
#pragma once

#include <string>
#include <vector>

#include "attention/schedule.h"
#include "models/pipeline/manifest.h"

namespace sparvar::pipeline {

int pixels_per_token(const ModelManifest& m);

struct SizeChoice {
  int height = 0, width = 0;
  ScaleSchedule schedule;
  double aspect = 1.0;  // the template's h/w (grids of small scales round it)
};

std::vector<SizeChoice> supported_sizes(const ModelManifest& m);

// "256x256" or "256" (square); Error listing the supported sizes when the model cannot draw it.
SizeChoice size_from_text(const ModelManifest& m, const std::string& text);
// The largest supported size of the template nearest to h/w (within 0.01 of one, else Error).
SizeChoice size_from_aspect(const ModelManifest& m, double h_div_w);
// The manifest's size and schedule.
SizeChoice default_size(const ModelManifest& m);

}  // namespace sparvar::pipeline

// libFuzzer: a model folder's manifest.json (parse_manifest). The manifest "lives" in a scratch folder
// holding empty stand-ins for the files the seeds name (infinity.safetensors, vae.pth, t5/spiece.model),
// so the fuzzer gets past the existence checks to the configs, the schedule and the cross-checks.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "scratch_dir.h"
#include "models/pipeline/manifest.h"

namespace {
std::filesystem::path g_dir;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = sparvar::fuzz::make_scratch_dir(
      "sparvar_fuzz_manifest", {"infinity.safetensors", "infinity.pth", "vae.pth", "vae.safetensors", "t5/spiece.model"});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto m =
        sparvar::pipeline::parse_manifest(std::string(reinterpret_cast<const char*>(data), size), g_dir);
    // Invariants of an accepted manifest: the last grid times the pixels per token is the image size.
    if (m.schedule.num_scales() < 1 || m.schedule.num_scales() > m.infinity.num_lvl) std::abort();
    const auto last = m.schedule.grids().back();
    const int64_t px = int64_t{m.vae.patch_size} * (m.infinity.spatial_patchify ? 2 : 1);
    if (m.image_h != last.h * px || m.image_w != last.w * px) std::abort();
    if (m.vae.codebook_dim != m.infinity.vae_codebook_dim) std::abort();
  } catch (const sparvar::Error&) {
  }
  return 0;
}

#include "models/bsq_vae/layout.h"

#include <cstdlib>

#include "core/error.h"

namespace sparvar::bsq_vae {

std::string_view vae_layout_name(VaeLayout layout) {
  switch (layout) {
    case VaeLayout::Nchw: return "nchw";
    case VaeLayout::Nhwc: return "nhwc";
    default: return "auto";
  }
}

VaeLayout vae_layout_from_name(std::string_view name) {
  if (name == "nchw") return VaeLayout::Nchw;
  if (name == "nhwc") return VaeLayout::Nhwc;
  if (name == "auto") return VaeLayout::Auto;
  fail("unknown BSQ-VAE layout '{}' (expected nchw, nhwc or auto)", name);
}

VaeLayout resolve_vae_layout(VaeLayout requested, Device device) {
  if (requested != VaeLayout::Auto) return requested;
  if (const char* env = std::getenv("SPARVAR_VAE_LAYOUT"); env && *env) {
    const std::string_view s(env);
    SPARVAR_CHECK(s == "nchw" || s == "nhwc", "SPARVAR_VAE_LAYOUT={}: expected nchw or nhwc", s);
    return vae_layout_from_name(s);
  }
  return device == Device::CUDA ? VaeLayout::Nhwc : VaeLayout::Nchw;
}

}  // namespace sparvar::bsq_vae

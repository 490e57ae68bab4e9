// Memory layout of the decoder's activations: NCHW (the official layout; every conv transposed by cuDNN inside)
// or channels-last NHWC (cuDNN's native layout, group norms in one statistics and one apply pass; weights permuted
// once at load). Both give the same image up to rounding.
#pragma once

#include <string_view>

#include "core/tensor.h"

namespace sparvar::bsq_vae {

enum class VaeLayout { Auto, Nchw, Nhwc };

// Auto: SPARVAR_VAE_LAYOUT=nchw|nhwc when set, else NHWC on CUDA and NCHW on the CPU (whose NHWC ops are the
// plain reference loops). An explicit layout is kept. A bad SPARVAR_VAE_LAYOUT throws naming it.
VaeLayout resolve_vae_layout(VaeLayout requested, Device device);
std::string_view vae_layout_name(VaeLayout layout);
// "nchw" / "nhwc" / "auto"; throws listing them.
VaeLayout vae_layout_from_name(std::string_view name);

}  // namespace sparvar::bsq_vae

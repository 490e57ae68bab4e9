// Bits -> BSQ codes and the running sum ("summed codes") of the generation loop, as codes.py does:
// a bit b becomes (2b - 1) / sqrt(d) (then L2-normalised over the d bits of a position, which keeps it);
// scale k's codes are upsampled bilinearly (align_corners=False) to the last grid and summed (the last scale
// is added as is); the next scale's input is the running sum resampled bilinearly to the next grid.
// d56 models see 2x2-patchified latents: channel c*4 + i*2 + j of a token <-> latent (c, 2y+i, 2x+j).
#pragma once

#include <cstdint>

#include "attention/schedule.h"
#include "backend/backend.h"
#include "models/infinity/config.h"

namespace sparvar::infinity {

// The VAE latent grid of a token grid (2x larger when patchified).
ScaleGrid latent_grid(const ScaleGrid& tokens, bool patchify);

// The code of a 0 bit and of a 1 bit (after the L2 normalisation over the d bits of a position).
struct CodeValues {
  float zero, one;
};
CodeValues code_values(const InfinityConfig& c);

// bits [batch, h*w, d_vae] (0/1 bytes) of one scale -> host F32 codes [batch, codebook_dim, H, W]. The generator
// does this on the backend (Backend::bits_to_codes with code_values); this host version is the reference.
Tensor bits_to_latent_codes(const uint8_t* bits, int64_t batch, const ScaleGrid& grid, const InfinityConfig& c);

// features [batch, d, H, W] (latent grid) -> tokens [batch, h*w, d_vae] (pixel_unshuffle when patchified).
void latent_to_tokens(Backend& be, const Tensor& features, bool patchify, Tensor& tokens);

}  // namespace sparvar::infinity

#include "models/infinity/codes.h"

#include <cmath>

#include "core/error.h"

namespace sparvar::infinity {

ScaleGrid latent_grid(const ScaleGrid& tokens, bool patchify) {
  return patchify ? ScaleGrid{tokens.h * 2, tokens.w * 2} : tokens;
}

CodeValues code_values(const InfinityConfig& c) {
  const int64_t d = c.vae_codebook_dim;
  const float s = 1.0f / std::sqrt(static_cast<float>(d));
  // F.normalize over the d bits of a position: every code has norm sqrt(d * s^2), the same for all.
  const float norm = std::sqrt(static_cast<float>(d) * (s * s));
  return {(0.0f * s * 2.0f - s) / norm, (1.0f * s * 2.0f - s) / norm};
}

Tensor bits_to_latent_codes(const uint8_t* bits, int64_t batch, const ScaleGrid& grid, const InfinityConfig& c) {
  const int64_t d = c.vae_codebook_dim, D = c.d_vae(), n = grid.tokens();
  const int p = c.spatial_patchify ? 2 : 1;
  const int64_t H = grid.h * p, W = grid.w * p;
  const CodeValues v = code_values(c);
  const float value[2] = {v.zero, v.one};
  Tensor out = Tensor::empty({batch, d, H, W}, DType::F32);
  float* o = out.data_as<float>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t y = 0; y < grid.h; ++y)
      for (int64_t x = 0; x < grid.w; ++x) {
        const uint8_t* tok = bits + (b * n + y * grid.w + x) * D;
        for (int64_t ch = 0; ch < D; ++ch) {
          const int64_t c_lat = ch / (p * p), i = (ch / p) % p, j = ch % p;
          o[((b * d + c_lat) * H + y * p + i) * W + x * p + j] = value[tok[ch] ? 1 : 0];
        }
      }
  return out;
}

void latent_to_tokens(Backend& be, const Tensor& f, bool patchify, Tensor& tokens) {
  const int64_t B = f.dim(0), d = f.dim(1), H = f.dim(2), W = f.dim(3);
  if (!patchify) {
    be.permute(f.view({B, d, H * W}), {0, 2, 1}, tokens);
    return;
  }
  SPARVAR_CHECK(H % 2 == 0 && W % 2 == 0, "patchify: latent grid {}x{} is not even", H, W);
  // [B, d, h, 2, w, 2] -> [B, h, w, d, 2, 2]: channel c*4 + i*2 + j
  Tensor t = tokens.view({B, H / 2, W / 2, d, 2, 2});
  be.permute(f.view({B, d, H / 2, 2, W / 2, 2}), {0, 2, 4, 1, 3, 5}, t);
}

}  // namespace sparvar::infinity

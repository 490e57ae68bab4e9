#include "models/bsq_vae/decoder.h"

#include <algorithm>

#include "io/checkpoint.h"
#include "models/bsq_vae/keys.h"
#include "models/bsq_vae/resblock.h"
#include "models/bsq_vae/upsample.h"

namespace sparvar::bsq_vae {

BsqVaeDecoder BsqVaeDecoder::load(const std::filesystem::path& path, Backend& backend, DType dtype,
                                  const std::string& preset) {
  const io::Checkpoint ckpt = io::open_checkpoint(path);
  VaeConfig cfg = infer_vae_config(ckpt, KeyResolver(ckpt));
  if (!preset.empty()) {
    const VaeConfig want = vae_preset(preset);
    SPARVAR_CHECK(cfg == want, "BSQ-VAE {}: preset '{}' is {{{}}} but the checkpoint's shapes say {{{}}}",
                  path.string(), preset, want.describe(), cfg.describe());
  }
  DecoderWeights w = load_decoder_weights(ckpt, cfg, backend, dtype);
  return BsqVaeDecoder(std::move(cfg), std::move(w), backend, dtype);
}

Tensor BsqVaeDecoder::to_backend(const Tensor& codes) {
  if (codes.device() != be_->device()) return be_->upload(codes, dtype_);
  if (codes.dtype() == dtype_) return codes;
  Tensor converted = be_->empty(codes.shape(), dtype_);
  be_->copy(codes, converted);
  return converted;
}

Tensor BsqVaeDecoder::decode(const Tensor& codes) {
  SPARVAR_CHECK(codes.defined() && dtype_is_float(codes.dtype()), "BSQ-VAE decode: codes must be a float tensor");
  SPARVAR_CHECK(codes.ndim() == 4 && codes.dim(1) == cfg_.codebook_dim && codes.dim(2) > 0 && codes.dim(3) > 0,
                "BSQ-VAE decode: codes {} must be [B, {}, h, w] (summed codes on the latent grid){}",
                shape_string(codes.shape()), cfg_.codebook_dim,
                codes.ndim() == 4 && codes.dim(1) == 4 * cfg_.codebook_dim
                    ? "; these look 2x2-patchified: unpatchify_codes() first"
                    : "");
  Backend& be = *be_;
  Tensor h = conv(be, to_backend(codes), w_.conv_in);
  h = resblock(be, h, w_.mid1);
  h = resblock(be, h, w_.mid2);
  for (int i = cfg_.levels() - 1; i >= 0; --i) {
    const auto& lvl = w_.up[static_cast<size_t>(i)];
    for (const auto& b : lvl.blocks) h = resblock(be, h, b);
    if (lvl.has_upsample) h = upsample2x(be, h, lvl.upsample);
  }
  Tensor img = be.download(conv(be, norm_silu(be, h, w_.norm_out), w_.conv_out));
  // The clamp is cheap on the host copy we need anyway for the PNG.
  float* p = img.data_as<float>();
  std::transform(p, p + img.numel(), p, [](float v) { return std::clamp(v, -1.0f, 1.0f); });
  return img;
}

Tensor unpatchify_codes(Backend& backend, const Tensor& tokens) {
  SPARVAR_CHECK(tokens.ndim() == 4 && tokens.dim(1) % 4 == 0,
                "unpatchify_codes: tokens {} must be [B, 4d, h, w]", shape_string(tokens.shape()));
  const int64_t B = tokens.dim(0), d = tokens.dim(1) / 4, h = tokens.dim(2), w = tokens.dim(3);
  Tensor latent = backend.empty({B, d, h, 2, w, 2}, tokens.dtype());
  // tokens[b, c, i, j, y, x] = latent[b, c, y, i, x, j]
  backend.permute(tokens.view({B, d, 2, 2, h, w}), {0, 1, 4, 2, 5, 3}, latent);
  return latent.view({B, d, 2 * h, 2 * w});
}

Tensor to_uint8_rgb(const Tensor& image) {
  SPARVAR_CHECK(image.device() == Device::CPU && image.dtype() == DType::F32 && image.ndim() == 4 &&
                    image.dim(1) == 3,
                "to_uint8_rgb: expected a host f32 [B, 3, H, W] image, got {}", image.describe());
  const int64_t B = image.dim(0), H = image.dim(2), W = image.dim(3);
  Tensor out = Tensor::empty({B, H, W, 3}, DType::U8);
  const float* src = image.data_as<float>();
  auto* dst = out.data_as<uint8_t>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t p = 0; p < H * W; ++p) {
        // Same float32 arithmetic as the reference ((x + 1) / 2 * 255, then truncation), clamped for safety.
        const float v = std::clamp((src[(b * 3 + c) * H * W + p] + 1.0f) / 2.0f * 255.0f, 0.0f, 255.0f);
        dst[(b * H * W + p) * 3 + c] = static_cast<uint8_t>(v);
      }
    }
  }
  return out;
}

}  // namespace sparvar::bsq_vae

#include "models/bsq_vae/decoder.h"

#include <algorithm>

#include "backend/trace.h"
#include "io/checkpoint.h"
#include "models/bsq_vae/channels_last.h"
#include "models/bsq_vae/keys.h"
#include "models/bsq_vae/nhwc_blocks.h"
#include "models/bsq_vae/resblock.h"
#include "models/bsq_vae/upsample.h"

namespace sparvar::bsq_vae {

BsqVaeDecoder::BsqVaeDecoder(VaeConfig cfg, DecoderWeights w, Backend& backend, DType dtype, VaeLayout layout)
    : cfg_(std::move(cfg)), be_(&backend), dtype_(dtype), layout_(resolve_vae_layout(layout, backend.device())) {
  w_ = layout_ == VaeLayout::Nhwc ? to_channels_last(backend, w) : std::move(w);
}

BsqVaeDecoder BsqVaeDecoder::from_weights(VaeConfig cfg, const DecoderWeights& weights, Backend& backend, DType dtype,
                                          VaeLayout layout) {
  cfg.validate();
  const Tensor& first = weights.conv_in.w;
  SPARVAR_CHECK(first.defined() && first.device() == backend.device() && first.dtype() == dtype &&
                    first.shape() == Shape({cfg.level_channels(cfg.levels() - 1), cfg.codebook_dim, 3, 3}),
                "BSQ-VAE decoder from weights: conv_in weight {} must be {} [{}, {}, 3, 3] on {} (config {{{}}})",
                first.defined() ? first.describe() : "(none)", dtype_name(dtype), cfg.level_channels(cfg.levels() - 1),
                cfg.codebook_dim, backend.name(), cfg.describe());
  return BsqVaeDecoder(std::move(cfg), weights, backend, dtype, layout);
}

BsqVaeDecoder BsqVaeDecoder::load(const std::filesystem::path& path, Backend& backend, DType dtype,
                                  const std::string& preset, VaeLayout layout) {
  const io::Checkpoint ckpt = io::open_checkpoint(path);
  VaeConfig cfg = infer_vae_config(ckpt, KeyResolver(ckpt));
  if (!preset.empty()) {
    const VaeConfig want = vae_preset(preset);
    SPARVAR_CHECK(cfg == want, "BSQ-VAE {}: preset '{}' is {{{}}} but the checkpoint's shapes say {{{}}}",
                  path.string(), preset, want.describe(), cfg.describe());
  }
  DecoderWeights w = load_decoder_weights(ckpt, cfg, backend, dtype);
  return BsqVaeDecoder(std::move(cfg), std::move(w), backend, dtype, layout);
}

Tensor BsqVaeDecoder::to_backend(const Tensor& codes) {
  if (codes.device() != be_->device()) return be_->upload(codes, dtype_);
  if (codes.dtype() == dtype_) return codes;
  Tensor converted = be_->empty(codes.shape(), dtype_);
  be_->copy(codes, converted);
  return converted;
}

BsqVaeDecoder::Queued BsqVaeDecoder::decode_queued(const Tensor& codes, Output output) {
  SPARVAR_CHECK(codes.defined() && dtype_is_float(codes.dtype()), "BSQ-VAE decode: codes must be a float tensor");
  SPARVAR_CHECK(codes.ndim() == 4 && codes.dim(1) == cfg_.codebook_dim && codes.dim(2) > 0 && codes.dim(3) > 0,
                "BSQ-VAE decode: codes {} must be [B, {}, h, w] (summed codes on the latent grid){}",
                shape_string(codes.shape()), cfg_.codebook_dim,
                codes.ndim() == 4 && codes.dim(1) == 4 * cfg_.codebook_dim
                    ? "; these look 2x2-patchified: unpatchify_codes() first"
                    : "");
  const bool rgb8 = output == Output::Rgb8;
  SPARVAR_CHECK(!rgb8 || cfg_.out_channels == 3, "BSQ-VAE decode: an RGB image needs 3 output channels, the decoder "
                "has {}", cfg_.out_channels);
  const TraceRange trace("vae");
  Queued q;
  q.start = be_->record_event();
  const Tensor on_backend = to_backend(codes);
  const bool nhwc = layout_ == VaeLayout::Nhwc;
  const Tensor out = nhwc ? decode_nhwc(on_backend) : decode_nchw(on_backend);
  if (rgb8) {
    // Straight from conv_out's output: on the NHWC path the permute back to NCHW and the channel copies are skipped.
    const int64_t H = out.dim(nhwc ? 1 : 2), W = out.dim(nhwc ? 2 : 3);
    q.rgb8 = be_->empty({out.dim(0), H, W, 3}, DType::U8);
    be_->image_to_rgb8(out, nhwc ? ImageLayout::Nhwc : ImageLayout::Nchw, q.rgb8);
  } else {
    q.image = nhwc ? nhwc_to_image(out) : out;
  }
  q.end = be_->record_event();
  return q;
}

Tensor BsqVaeDecoder::decode(const Tensor& codes) { return image_to_host(decode_queued(codes).image); }

Tensor BsqVaeDecoder::decode_rgb8(const Tensor& codes) {
  return rgb8_to_host(decode_queued(codes, Output::Rgb8).rgb8);
}

Tensor BsqVaeDecoder::image_to_host(const Tensor& image) const {
  Tensor img = be_->download(image);
  // The clamp is cheap on the host copy we need anyway (the 8-bit path clamps on the backend).
  float* p = img.data_as<float>();
  std::transform(p, p + img.numel(), p, [](float v) { return std::clamp(v, -1.0f, 1.0f); });
  return img;
}

Tensor BsqVaeDecoder::rgb8_to_host(const Tensor& rgb8) const {
  SPARVAR_CHECK(rgb8.defined() && rgb8.dtype() == DType::U8 && rgb8.ndim() == 4 && rgb8.dim(3) == 3,
                "BSQ-VAE rgb8_to_host: expected decode_queued's U8 [B, H, W, 3] image (Output::Rgb8), got {}",
                rgb8.describe());
  return be_->download_raw(rgb8);
}

Tensor BsqVaeDecoder::decode_nchw(const Tensor& codes) {
  Backend& be = *be_;
  Tensor h = conv(be, codes, w_.conv_in);
  h = resblock(be, h, w_.mid1);
  h = resblock(be, h, w_.mid2);
  for (int i = cfg_.levels() - 1; i >= 0; --i) {
    const auto& lvl = w_.up[static_cast<size_t>(i)];
    for (const auto& b : lvl.blocks) h = resblock(be, h, b);
    if (lvl.has_upsample) h = upsample2x(be, h, lvl.upsample);
  }
  return conv(be, norm_silu(be, h, w_.norm_out), w_.conv_out);
}

Tensor BsqVaeDecoder::decode_nhwc(const Tensor& codes) {
  Backend& be = *be_;
  const int64_t B = codes.dim(0);
  Tensor x = be.empty({B, codes.dim(2), codes.dim(3), codes.dim(1)}, dtype_);
  be.permute(codes, {0, 2, 3, 1}, x);
  Tensor h = conv_nhwc(be, x, w_.conv_in);
  h = resblock_nhwc(be, h, w_.mid1);
  h = resblock_nhwc(be, h, w_.mid2);
  for (int i = cfg_.levels() - 1; i >= 0; --i) {
    const auto& lvl = w_.up[static_cast<size_t>(i)];
    for (const auto& b : lvl.blocks) h = resblock_nhwc(be, h, b);
    if (lvl.has_upsample) h = upsample2x_nhwc(be, h, lvl.upsample);
  }
  norm_silu_nhwc_in_place(be, h, w_.norm_out);
  return conv_nhwc(be, h, w_.conv_out);  // [B, H, W, padded channels]
}

Tensor BsqVaeDecoder::nhwc_to_image(const Tensor& out) {
  Backend& be = *be_;
  const int64_t B = out.dim(0), H = out.dim(1), W = out.dim(2), padded = out.dim(3), C = cfg_.out_channels;
  Tensor planes = be.empty({B, padded, H, W}, dtype_);
  be.permute(out, {0, 3, 1, 2}, planes);
  if (padded == C) return planes;
  // Each image's first C planes are contiguous: one copy per image drops the zero-padded channels.
  Tensor image = be.empty({B, C, H, W}, dtype_);
  for (int64_t b = 0; b < B; ++b) {
    Tensor dst = image.slice0(b, b + 1).view({C, H * W});
    be.copy(planes.slice0(b, b + 1).view({padded, H * W}).slice0(0, C), dst);
  }
  return image;
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

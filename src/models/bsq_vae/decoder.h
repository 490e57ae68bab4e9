// The BSQ-VAE decoder of Infinity: summed BSQ codes on the VAE latent grid -> image in [-1, 1].
//
// Input: the codes the generation loop accumulates, [B, d, h, w] with d = codebook_dim (32 for d32, 14 for
// d56), h x w the latent grid (the image is (h * patch) x (w * patch)). For d56 the transformer's token grid is
// 2x2-patchified ([B, 56, h/2, w/2], pixel_unshuffle channel order); unpatchify_codes() turns that back into
// the latent layout. Output: decoder(z) clamped to [-1, 1]; to_uint8_rgb() gives the official uint8 image.
// Activations are NCHW or channels-last (layout.h: NHWC by default on CUDA); the layout is chosen when the decoder
// is made and changes nothing outside it.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "models/bsq_vae/config.h"
#include "models/bsq_vae/layout.h"
#include "models/bsq_vae/weights.h"

namespace sparvar::bsq_vae {

class BsqVaeDecoder {
 public:
  // Opens an official VAE file ({'vae': state_dict} .pth, or safetensors / a folder) and uploads the decoder
  // to `backend` as `dtype`. The config is inferred from the tensor shapes; with a preset name it must also
  // equal that preset (error names both). Every decoder key is checked by name and shape. layout: see layout.h.
  static BsqVaeDecoder load(const std::filesystem::path& path, Backend& backend, DType dtype = DType::F32,
                            const std::string& preset = "", VaeLayout layout = VaeLayout::Auto);
  // A decoder over weights already on `backend` in `dtype` (NCHW, as load_decoder_weights and
  // random_decoder_weights give them; a channels-last decoder permutes its own copy).
  static BsqVaeDecoder from_weights(VaeConfig cfg, const DecoderWeights& weights, Backend& backend, DType dtype,
                                    VaeLayout layout = VaeLayout::Auto);

  const VaeConfig& config() const { return cfg_; }
  VaeLayout layout() const { return layout_; }

  // codes [B, d, h, w] (host, or already on the backend) -> host F32 image [B, 3, h * patch, w * patch] in [-1, 1].
  // The same as image_to_host(decode_queued(codes).image).
  Tensor decode(const Tensor& codes);
  // The decode's work queued on the backend (in the trace range "vae"), nothing waited for: the image [B, 3, H, W]
  // on the backend, not yet clamped, between two backend events. Queued behind the transformer's last scale, its
  // host side (the launches of ~300 ops) runs while the device is still busy with the scales instead of after them.
  struct Queued {
    Tensor image;
    std::unique_ptr<TimingEvent> start, end;
    // The decode's device time; valid once the backend has waited for the end event (image_to_host does).
    double device_ms() const { return end->ms_since(*start); }
  };
  Queued decode_queued(const Tensor& codes);
  // decode_queued's image -> host F32, clamped to [-1, 1] (waits for the device).
  Tensor image_to_host(const Tensor& image) const;

 private:
  BsqVaeDecoder(VaeConfig cfg, DecoderWeights w, Backend& backend, DType dtype, VaeLayout layout);
  Tensor to_backend(const Tensor& codes);
  // codes on the backend -> image [B, out_channels, H, W] on the backend.
  Tensor decode_nchw(const Tensor& codes);
  Tensor decode_nhwc(const Tensor& codes);

  VaeConfig cfg_;
  DecoderWeights w_;  // in the layout's form (channels_last.h for NHWC)
  Backend* be_;
  DType dtype_;
  VaeLayout layout_;
};

// d56: token-grid codes [B, 4d, h, w] (channel c*4 + i*2 + j = latent (c, 2y+i, 2x+j)) -> latent codes
// [B, d, 2h, 2w], on the backend `tokens` lives on.
Tensor unpatchify_codes(Backend& backend, const Tensor& tokens);

// Host F32 [B, 3, H, W] in [-1, 1] -> host U8 [B, H, W, 3] RGB: (x + 1) / 2 * 255 truncated, as the official
// script does (it then flips to BGR for cv2; we keep RGB).
Tensor to_uint8_rgb(const Tensor& image);

}  // namespace sparvar::bsq_vae

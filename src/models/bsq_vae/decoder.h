// The BSQ-VAE decoder of Infinity: summed BSQ codes on the VAE latent grid -> image in [-1, 1].
//
// Input: the codes the generation loop accumulates, [B, d, h, w] with d = codebook_dim (32 for d32, 14 for
// d56), h x w the latent grid (the image is (h * patch) x (w * patch)). For d56 the transformer's token grid is
// 2x2-patchified ([B, 56, h/2, w/2], pixel_unshuffle channel order); unpatchify_codes() turns that back into
// the latent layout. Output: decoder(z) clamped to [-1, 1]; to_uint8_rgb() gives the official uint8 image, which
// decode_rgb8() finishes on the backend instead (Backend::image_to_rgb8, the same bytes).
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
  // codes -> host U8 [B, h * patch, w * patch, 3] RGB, bit for bit to_uint8_rgb(decode(codes)), finished on the
  // backend: rgb8_to_host(decode_queued(codes, Output::Rgb8).rgb8).
  Tensor decode_rgb8(const Tensor& codes);

  // What decode_queued leaves on the backend: the float image (compare's and parity's measures) or the finished
  // 8-bit RGB image (what a PNG needs: a quarter of the bytes to download and no host pass).
  enum class Output { Float, Rgb8 };
  // The decode's work queued on the backend (in the trace range "vae"), nothing waited for: the image on the
  // backend, between two backend events. Queued behind the transformer's last scale, its host side (the launches of
  // ~300 ops) runs while the device is still busy with the scales instead of after them.
  struct Queued {
    Tensor image;  // Output::Float: [B, 3, H, W], not yet clamped
    Tensor rgb8;   // Output::Rgb8: U8 [B, H, W, 3] (Backend::image_to_rgb8, inside the events)
    std::unique_ptr<TimingEvent> start, end;
    // The decode's device time; valid once the backend has waited for the end event (the *_to_host calls do).
    double device_ms() const { return end->ms_since(*start); }
  };
  Queued decode_queued(const Tensor& codes, Output output = Output::Float);
  // decode_queued's image -> host F32, clamped to [-1, 1] (waits for the device).
  Tensor image_to_host(const Tensor& image) const;
  // decode_queued's rgb8 -> host U8 [B, H, W, 3] (waits for the device).
  Tensor rgb8_to_host(const Tensor& rgb8) const;

 private:
  BsqVaeDecoder(VaeConfig cfg, DecoderWeights w, Backend& backend, DType dtype, VaeLayout layout);
  Tensor to_backend(const Tensor& codes);
  // codes on the backend -> the decoder's output as its layout leaves it: [B, out_channels, H, W] (NCHW), or
  // conv_out's channels-last [B, H, W, padded channels] (NHWC, see channels_last.h).
  Tensor decode_nchw(const Tensor& codes);
  Tensor decode_nhwc(const Tensor& codes);
  // decode_nhwc's output -> the image [B, out_channels, H, W] (the padding channels dropped).
  Tensor nhwc_to_image(const Tensor& out);

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
// script does (it then flips to BGR for cv2; we keep RGB). The reference for decode_rgb8's device path.
Tensor to_uint8_rgb(const Tensor& image);

}  // namespace sparvar::bsq_vae

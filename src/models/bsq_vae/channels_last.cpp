#include "models/bsq_vae/channels_last.h"

namespace sparvar::bsq_vae {

namespace {

// w [Cout, Cin, k, k] -> [Cp, k, k, Cin], b [Cout] -> [Cp], Cp = Cout rounded up to `multiple`, zeros past Cout.
ConvWeights conv_channels_last(Backend& be, const ConvWeights& c, int64_t multiple = 1) {
  const int64_t cout = c.w.dim(0), cin = c.w.dim(1), kh = c.w.dim(2), kw = c.w.dim(3);
  const DType dtype = c.w.dtype();
  ConvWeights out;
  out.pad = c.pad;
  Tensor w = be.empty({cout, kh, kw, cin}, dtype);
  be.permute(c.w, {0, 2, 3, 1}, w);
  const int64_t padded = (cout + multiple - 1) / multiple * multiple;
  if (padded == cout) {
    out.w = w;
    out.b = c.b;
    return out;
  }
  out.w = be.upload(Tensor::zeros({padded, kh, kw, cin}, DType::F32), dtype);
  be.copy_slice(w, out.w, 0, 0);
  out.b = be.upload(Tensor::zeros({padded}, DType::F32), dtype);
  be.copy_slice(c.b, out.b, 0, 0);
  return out;
}

ResBlockWeights resblock_channels_last(Backend& be, const ResBlockWeights& r) {
  ResBlockWeights out = r;
  out.conv1 = conv_channels_last(be, r.conv1);
  out.conv2 = conv_channels_last(be, r.conv2);
  if (r.has_shortcut) out.shortcut = conv_channels_last(be, r.shortcut);
  return out;
}

}  // namespace

DecoderWeights to_channels_last(Backend& be, const DecoderWeights& w) {
  DecoderWeights out = w;  // the norms are per channel: the same in both layouts
  out.conv_in = conv_channels_last(be, w.conv_in);
  out.mid1 = resblock_channels_last(be, w.mid1);
  out.mid2 = resblock_channels_last(be, w.mid2);
  for (size_t i = 0; i < w.up.size(); ++i) {
    for (size_t j = 0; j < w.up[i].blocks.size(); ++j)
      out.up[i].blocks[j] = resblock_channels_last(be, w.up[i].blocks[j]);
    if (w.up[i].has_upsample) out.up[i].upsample = conv_channels_last(be, w.up[i].upsample);
  }
  out.conv_out = conv_channels_last(be, w.conv_out, kConvOutChannelMultiple);
  return out;
}

}  // namespace sparvar::bsq_vae

// Entry point of image_to_rgb8 (kernel in image_rgb8.cu): the shared checks, then one launch.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/rgb8_checks.h"

namespace sparvar::cuda {

void CudaBackend::image_to_rgb8(const Tensor& image, ImageLayout layout, Tensor& rgb) {
  const Rgb8Source s = check_image_to_rgb8(image, layout, rgb, Device::CUDA, "cuda");
  if (rgb.numel() == 0) return;
  make_current();
  launch_image_to_rgb8(image.dtype(), image.data(), rgb.data_as<uint8_t>(), s, stream_);
}

}  // namespace sparvar::cuda

#include "models/pipeline/output_files.h"

#include <cstdio>
#include <fstream>
#include <span>
#include <system_error>

#include "core/error.h"
#include "io/png.h"

namespace sparvar::pipeline {
namespace fs = std::filesystem;

std::vector<fs::path> numbered_outputs(const fs::path& out, int count) {
  if (count == 1) return {out};
  std::vector<fs::path> paths;
  for (int i = 0; i < count; ++i) {
    fs::path p = out;
    p.replace_filename(fmt::format("{}_{}{}", out.stem().string(), i, out.extension().string()));
    paths.push_back(p);
  }
  return paths;
}

void require_writable_png(const fs::path& out) {
  SPARVAR_CHECK(!out.empty(), "no output path given (-o FILE.png)");
  std::error_code ec;
  SPARVAR_CHECK(!fs::is_directory(out, ec), "cannot write {}: it is a folder (want -o FILE.png)", out.string());
  SPARVAR_CHECK(out.extension() == ".png" || out.extension() == ".PNG", "output {}: only .png images are written",
                out.string());
  const fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  SPARVAR_CHECK(fs::is_directory(dir, ec), "cannot write {}: folder {} does not exist", out.string(), dir.string());
  const fs::path probe = dir / fmt::format(".sparvar-write-test-{}", static_cast<unsigned long>(std::rand()));
  {
    std::ofstream f(probe, std::ios::binary);
    SPARVAR_CHECK(f.good(), "cannot write {}: folder {} is not writable", out.string(), dir.string());
  }
  fs::remove(probe, ec);
}

void write_pngs(const Tensor& images, const std::vector<fs::path>& paths) {
  SPARVAR_CHECK(images.ndim() == 4 && images.dim(3) == 3 && images.dtype() == DType::U8,
                "images must be U8 [N, H, W, 3], got {}", images.describe());
  SPARVAR_CHECK(static_cast<int64_t>(paths.size()) == images.dim(0), "{} paths for {} images", paths.size(),
                images.dim(0));
  const int64_t H = images.dim(1), W = images.dim(2);
  for (size_t i = 0; i < paths.size(); ++i) {
    const Tensor img = images.slice0(static_cast<int64_t>(i), static_cast<int64_t>(i) + 1);
    io::write_png(paths[i], std::span<const uint8_t>(img.data_as<uint8_t>(), static_cast<size_t>(H * W * 3)),
                  static_cast<uint32_t>(W), static_cast<uint32_t>(H), 3);
  }
}

}  // namespace sparvar::pipeline

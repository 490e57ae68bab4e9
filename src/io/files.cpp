#include "io/files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace sparvar::io {

void write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  SPARVAR_CHECK(f != nullptr, "cannot create {}: {}", path.string(), std::strerror(errno));
  SPARVAR_CHECK(bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f.get()) == bytes.size(),
                "cannot write {}: {}", path.string(), std::strerror(errno));
  SPARVAR_CHECK(std::fclose(f.release()) == 0, "cannot write {}: {}", path.string(), std::strerror(errno));
}

}  // namespace sparvar::io

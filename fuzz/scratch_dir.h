// A temporary folder for fuzz targets whose parsers check that named files exist: made once at start-up,
// holding an empty file for each name (subfolders created), removed at exit.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include <stdlib.h>

namespace sparvar::fuzz {

inline std::filesystem::path& scratch_dir_path() {
  static std::filesystem::path dir;
  return dir;
}

inline std::filesystem::path make_scratch_dir(const char* name, std::initializer_list<const char*> files) {
  namespace fs = std::filesystem;
  std::string tmpl = (fs::temp_directory_path() / (std::string(name) + "_XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  scratch_dir_path() = tmpl;
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(scratch_dir_path(), ec);
  });
  for (const char* file : files) {
    const fs::path p = scratch_dir_path() / file;
    fs::create_directories(p.parent_path());
    std::ofstream(p).put('\0');
  }
  return scratch_dir_path();
}

}  // namespace sparvar::fuzz

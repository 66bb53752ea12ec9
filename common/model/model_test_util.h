// Helpers shared by the model-format tests (header-only; test binaries only).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "common/testing/paths.h"

namespace treepo::model::testing {

// Paths come from the project-wide test helpers.
using ::treepo::testing::FreshTempDir;
using ::treepo::testing::SharedDir;
using ::treepo::testing::SourceDir;
using ::treepo::testing::TestDataPath;

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace treepo::model::testing

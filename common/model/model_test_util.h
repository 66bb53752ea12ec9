// Helpers shared by the model-format tests (header-only; test binaries only).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace treepo::model::testing {

// The repository root: $TREEPO_SOURCE_DIR, else three levels above this header's path
// (common/model/model_test_util.h) as compiled.
inline std::string SourceDir() {
  if (const char* s = std::getenv("TREEPO_SOURCE_DIR")) return s;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().string();
}

// The ../shared folder: $TREEPO_SHARED_DIR, else SourceDir()/../shared.
inline std::string SharedDir() {
  if (const char* d = std::getenv("TREEPO_SHARED_DIR")) return d;
  return SourceDir() + "/../shared";
}

// SourceDir()/tests/data/<name>.
inline std::string TestDataPath(const std::string& name) {
  return SourceDir() + "/tests/data/" + name;
}

// A fresh, empty directory under the system temp dir, unique per name and process.
inline std::string FreshTempDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("treepo_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace treepo::model::testing

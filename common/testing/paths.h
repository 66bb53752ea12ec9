// Where tests find things: the source tree, the build tree (for the `treepo` binary) and the
// shared folder with the real model and data sets. Each is an environment variable when set
// (TREEPO_SOURCE_DIR, TREEPO_BINARY_DIR, TREEPO_SHARED_DIR), else the compile-time default
// that CMake gives every test target (treepo_test_paths). Header-only; tests only.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace treepo::testing {

inline std::string EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : std::string(fallback);
}

inline std::string SourceDir() {
#ifdef TREEPO_SOURCE_DIR_DEFAULT
  return EnvOr("TREEPO_SOURCE_DIR", TREEPO_SOURCE_DIR_DEFAULT);
#else
  return EnvOr("TREEPO_SOURCE_DIR", ".");
#endif
}

inline std::string BinaryDir() {
#ifdef TREEPO_BINARY_DIR_DEFAULT
  return EnvOr("TREEPO_BINARY_DIR", TREEPO_BINARY_DIR_DEFAULT);
#else
  return EnvOr("TREEPO_BINARY_DIR", "build");
#endif
}

// The shared folder: $TREEPO_SHARED_DIR, else <source>/../shared. May not exist: callers
// GTEST_SKIP() with a message when the file they need is absent.
inline std::string SharedDir() {
  const char* v = std::getenv("TREEPO_SHARED_DIR");
  if (v && *v) return v;
  return (std::filesystem::path(SourceDir()) / ".." / "shared").lexically_normal().string();
}

// The `treepo` command built in this tree.
inline std::string TreepoBinary() { return BinaryDir() + "/cluster/treepo"; }

// <source>/tests/data/<name>
inline std::string TestDataPath(const std::string& name) {
  return SourceDir() + "/tests/data/" + name;
}

// A fresh, empty directory under the system temp dir, unique per name and process: ctest runs
// each test case as its own process, in parallel, so two cases must never share a path.
inline std::string FreshTempDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("treepo_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace treepo::testing

// Helpers of the `treepo train` end-to-end tests: run a command with its output in a log, the
// step lines of a metrics.jsonl, and the tiny base model those tests train (pretrained in
// seconds). Header-only; tests only.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/testing/paths.h"
#include "tests/e2e_chaos/e2e_util.h"

namespace treepo::testing {

// Runs `cmd` in a shell with stdout and stderr in `log`; its exit code (-1: killed).
inline int Shell(const std::string& cmd, const std::filesystem::path& log) {
  const int st = std::system((cmd + " >" + log.string() + " 2>&1").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The RL step lines of a metrics.jsonl (evaluation lines left out).
inline std::vector<nlohmann::json> StepLines(const std::filesystem::path& metrics) {
  std::vector<nlohmann::json> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (!j.contains("eval")) out.push_back(std::move(j));
  }
  return out;
}

// Pretrains the tests' tiny base model (1 layer, dim 32) into `dir` with `binary`; true when
// it worked (log in `log`).
inline bool PretrainTinyBase(const std::string& binary, const std::filesystem::path& dir,
                             const std::filesystem::path& log) {
  return Shell(binary + " pretrain --out " + dir.string() +
                   " --steps 20 --batch 8 --dim 32 --hidden 64 --layers 1 --heads 2" +
                   " --kv-heads 2 --max-seq-len 128 --corpus 200 --eval-problems 0 --threads 1",
               log) == 0;
}

// A test suite that pretrains the tiny base model once, in a temp dir named
// <Derived::kDirPrefix><pid>, removed after the suite when nothing failed. Tests skip without a
// treepo binary. Derived: `class MyTest : public TinyBaseSuite<MyTest>` with
// `static constexpr const char* kDirPrefix = "treepo_my_e2e_";`.
template <typename Derived>
class TinyBaseSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = std::filesystem::temp_directory_path() /
            (std::string(Derived::kDirPrefix) + std::to_string(::getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    binary_ = TreepoBinary();
    if (!std::filesystem::exists(binary_)) return;
    base_ok_ = PretrainTinyBase(binary_, root_ / "base", root_ / "pretrain.log");
  }
  static void TearDownTestSuite() {
    if (!::testing::Test::HasFailure()) std::filesystem::remove_all(root_);
  }
  void SetUp() override {
    if (!std::filesystem::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    ASSERT_TRUE(base_ok_) << ReadAll((root_ / "pretrain.log").string());
  }

  static inline std::filesystem::path root_;
  static inline std::string binary_;
  static inline bool base_ok_ = false;
};

}  // namespace treepo::testing

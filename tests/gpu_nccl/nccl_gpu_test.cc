// NCCL between ranks on GPUs (label gpu): collectives, the bucketed weight broadcast of whole
// random models (bit-exact), a dead peer and a mismatched plan (errors, not hangs). Each rank
// is a process (nccl_test_peer; nccl_ranks.h says how two share one GPU). Skips where no
// CUDA device is visible, or the only one is in an exclusive compute mode.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/collective/nccl_communicator.h"
#include "common/testing/paths.h"
#include "tests/gpu_nccl/nccl_ranks.h"

namespace treepo {
namespace {

class NcclGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    n_devices_ = collective::NcclDeviceCount();
    if (n_devices_ == 0) {
      GTEST_SKIP() << "no CUDA device visible: the NCCL tests need a GPU (run "
                      "scripts/gpu-check.sh on a GPU host)";
    }
    int mode = cudaComputeModeDefault;
    if (n_devices_ < 2 && cudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, 0) == cudaSuccess &&
        mode != cudaComputeModeDefault) {
      GTEST_SKIP() << "one CUDA device in compute mode " << mode
                   << " (not shared): the two rank processes cannot both use it";
    }
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = testing::FreshTempDir("nccl_gpu_" + name_);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  testing::RankRun Run(const std::string& scenario, const std::vector<std::string>& rest,
                       int timeout_ms = 240000) {
    std::vector<std::string> args = {scenario, "2", dir_ + "/store", name_};
    args.insert(args.end(), rest.begin(), rest.end());
    Result<testing::RankRun> run =
        testing::RunNcclRanks(testing::BinaryDir() + "/tests/gpu_nccl/nccl_test_peer", 2,
                              n_devices_, args, dir_, timeout_ms);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    return run.ok() ? *run : testing::RankRun{};
  }

  static std::string Logs(const testing::RankRun& run) {
    std::string out;
    for (size_t r = 0; r < run.logs.size(); ++r) {
      std::ifstream in(run.logs[r]);
      std::stringstream ss;
      ss << in.rdbuf();
      out += "--- rank " + std::to_string(r) + " (exit " + std::to_string(run.exit_codes[r]) +
             ") ---\n" + ss.str();
    }
    return out;
  }

  int n_devices_ = 0;
  std::string name_, dir_;
};

TEST_F(NcclGpuTest, AllReduceBroadcastAndBarrierBetweenTwoRanks) {
  const testing::RankRun run = Run("collective", {});
  EXPECT_TRUE(run.all_ok()) << Logs(run);
}

TEST_F(NcclGpuTest, BroadcastsWholeRandomModelsBitExactInFp32) {
  // ~5.3M parameters in 1 MiB buckets (the embedding and lm_head split), two versions.
  const testing::RankRun run = Run("weights", {"f32", "1048576", "256", "4", "4096", "2"});
  EXPECT_TRUE(run.all_ok()) << Logs(run);
}

TEST_F(NcclGpuTest, BroadcastsWholeRandomModelsBitExactInBf16) {
  // An odd bucket size: buckets end inside tensors at arbitrary elements.
  const testing::RankRun run = Run("weights", {"bf16", "333333", "256", "4", "4096", "2"});
  EXPECT_TRUE(run.all_ok()) << Logs(run);
}

TEST_F(NcclGpuTest, ADeadPeerGivesAnErrorNotAHang) {
  const testing::RankRun run = Run("dead-peer", {"5000"}, 60000);
  ASSERT_EQ(run.exit_codes.size(), 2u);
  EXPECT_EQ(run.exit_codes[0], 0) << Logs(run);
  EXPECT_EQ(run.exit_codes[1], 128 + SIGKILL) << Logs(run);
}

TEST_F(NcclGpuTest, AMismatchedBucketPlanFailsOnBothSides) {
  const testing::RankRun run = Run("mismatch", {}, 60000);
  EXPECT_TRUE(run.all_ok()) << Logs(run);
}

}  // namespace
}  // namespace treepo

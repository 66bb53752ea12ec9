// The NCCL backend's host side, which runs without a GPU (CUDA builds; not labelled gpu):
// unique ids, the no-device error, argument checks, type sizes, the library version.
#include <gtest/gtest.h>
#include <nccl.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/collective/collective.h"
#include "common/collective/nccl_communicator.h"
#include "common/testing/paths.h"
#include "tests/gpu_nccl/nccl_ranks.h"

namespace treepo::collective {
namespace {

TEST(NcclHostTest, UniqueIdsAreFreshWithoutADevice) {
  Result<std::vector<uint8_t>> a = NewNcclUniqueId();
  Result<std::vector<uint8_t>> b = NewNcclUniqueId();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->size(), size_t{NCCL_UNIQUE_ID_BYTES});
  EXPECT_NE(*a, *b);
}

TEST(NcclHostTest, TheBuildOffersNccl) {
  const std::vector<std::string_view> backends = CollectiveBackends();
  EXPECT_NE(std::find(backends.begin(), backends.end(), "nccl"), backends.end());
  EXPECT_EQ(NcclVersionString().rfind(
                std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR) + ".", 0),
            0u)
      << NcclVersionString();
}

TEST(NcclHostTest, WithoutADeviceJoiningSaysSoAndNamesGloo) {
  if (NcclDeviceCount() > 0) GTEST_SKIP() << "a CUDA device is visible";
  CollectiveOptions o;
  o.backend = "nccl";
  o.world_size = 2;
  o.store_dir = "/nonexistent-store";
  o.timeout_ms = 100;
  Result<std::unique_ptr<NcclCommunicator>> c = NcclCommunicator::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("'gloo'"), std::string::npos) << c.status().ToString();
  const std::vector<uint8_t> id = *NewNcclUniqueId();
  c = NcclCommunicator::CreateWithId(o, id);
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition);
}

TEST(NcclHostTest, CreateWithIdChecksItsArguments) {
  CollectiveOptions o;
  o.world_size = 2;
  const std::vector<uint8_t> short_id(5, 1);
  Result<std::unique_ptr<NcclCommunicator>> c = NcclCommunicator::CreateWithId(o, short_id);
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("got 5"), std::string::npos) << c.status().ToString();
  o.rank = 2;
  c = NcclCommunicator::CreateWithId(o, std::vector<uint8_t>(NCCL_UNIQUE_ID_BYTES));
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  o.rank = 0;
  o.timeout_ms = 0;
  c = NcclCommunicator::CreateWithId(o, std::vector<uint8_t>(NCCL_UNIQUE_ID_BYTES));
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The harness the GPU tests run their ranks with: each rank a process with its own
// environment, its arguments in order, its own log.
TEST(NcclHostTest, RankHarnessGivesEachRankItsEnvironmentAndLog) {
  const std::string dir = testing::FreshTempDir("nccl_host_harness");
  const std::string peer = testing::BinaryDir() + "/tests/gpu_nccl/nccl_test_peer";
  // One device for two ranks: each gets its own host id.
  Result<testing::RankRun> run =
      testing::RunNcclRanks(peer, 2, 1, {"env", "2", dir + "/store", "harness"}, dir, 30000);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_TRUE(run->all_ok()) << ReadAll(run->logs[0]) << ReadAll(run->logs[1]);
  for (int r = 0; r < 2; ++r) {
    const std::string log = ReadAll(run->logs[r]);
    const std::string p = "rank " + std::to_string(r) + ": ";
    EXPECT_NE(log.find(p + "NCCL_HOSTID=treepo-rank-" + std::to_string(r)), std::string::npos)
        << log;
    EXPECT_NE(log.find(p + "NCCL_SOCKET_IFNAME=lo"), std::string::npos) << log;
  }
  // A device per rank: NCCL chooses its transports itself.
  std::filesystem::create_directories(dir + "/two");
  run = testing::RunNcclRanks(peer, 2, 2, {"env", "2", dir + "/store", "harness"}, dir + "/two",
                              30000);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(ReadAll(run->logs[0]).find("NCCL_HOSTID"), std::string::npos);

  if (NcclDeviceCount() == 0) {
    // Without a device a rank says why and fails (as the GPU tests' peers would).
    run = testing::RunNcclRanks(peer, 2, 1, {"collective", "2", dir + "/store", "nodev"},
                                dir + "/two", 30000);
    ASSERT_TRUE(run.ok());
    EXPECT_EQ(run->exit_codes, (std::vector<int>{1, 1}));
    EXPECT_NE(ReadAll(run->logs[1]).find("rank 1: FAIL: create:"), std::string::npos)
        << ReadAll(run->logs[1]);
  }
  std::filesystem::remove_all(dir);
}

TEST(NcclHostTest, TypeSizes) {
  EXPECT_EQ(NcclTypeBytes(NcclType::kUint8), 1u);
  EXPECT_EQ(NcclTypeBytes(NcclType::kBFloat16), 2u);
  EXPECT_EQ(NcclTypeBytes(NcclType::kInt32), 4u);
  EXPECT_EQ(NcclTypeBytes(NcclType::kFloat32), 4u);
  EXPECT_EQ(NcclTypeBytes(NcclType::kFloat64), 8u);
}

}  // namespace
}  // namespace treepo::collective

// The NCCL backend's host side, which runs without a GPU (CUDA builds; not labelled gpu):
// unique ids, the no-device error, argument checks, type sizes, the library version.
#include <gtest/gtest.h>
#include <nccl.h>

#include <algorithm>

#include "common/collective/collective.h"
#include "common/collective/nccl_communicator.h"

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

TEST(NcclHostTest, TypeSizes) {
  EXPECT_EQ(NcclTypeBytes(NcclType::kUint8), 1u);
  EXPECT_EQ(NcclTypeBytes(NcclType::kBFloat16), 2u);
  EXPECT_EQ(NcclTypeBytes(NcclType::kInt32), 4u);
  EXPECT_EQ(NcclTypeBytes(NcclType::kFloat32), 4u);
  EXPECT_EQ(NcclTypeBytes(NcclType::kFloat64), 8u);
}

}  // namespace
}  // namespace treepo::collective

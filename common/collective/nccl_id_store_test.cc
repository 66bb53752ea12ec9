#include "common/collective/nccl_id_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/testing/paths.h"

namespace treepo::collective {
namespace {

namespace fs = std::filesystem;

class NcclIdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::FreshTempDir("nccl_id_store_test"); }
  void TearDown() override { fs::remove_all(dir_); }

  static std::vector<uint8_t> SomeId() {
    std::vector<uint8_t> id(128);
    for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(i * 37 + 11);
    return id;
  }

  std::string dir_;
};

TEST_F(NcclIdStoreTest, PublishedIdIsReadBackByteForByte) {
  const std::vector<uint8_t> id = SomeId();
  ASSERT_TRUE(PublishNcclId(dir_ + "/sub", "run-1", id).ok());  // creates the directory
  Result<std::vector<uint8_t>> got = WaitNcclId(dir_ + "/sub", "run-1", id.size(), 1000);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, id);
  EXPECT_TRUE(fs::exists(dir_ + "/sub/run-1.nccl-id"));
}

TEST_F(NcclIdStoreTest, WaiterGetsAnIdPublishedAfterItStarted) {
  const std::vector<uint8_t> id = SomeId();
  Result<std::vector<uint8_t>> got = Status(Internal("not run"));
  std::thread waiter([&] { got = WaitNcclId(dir_, "late", id.size(), 20000); });
  ASSERT_TRUE(PublishNcclId(dir_, "late", id).ok());
  waiter.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, id);
}

TEST_F(NcclIdStoreTest, RunIdsKeepTheirIdsApart) {
  std::vector<uint8_t> a = SomeId(), b = SomeId();
  b[5] ^= 0xff;
  ASSERT_TRUE(PublishNcclId(dir_, "a", a).ok());
  ASSERT_TRUE(PublishNcclId(dir_, "b", b).ok());
  EXPECT_EQ(*WaitNcclId(dir_, "a", 128, 1000), a);
  EXPECT_EQ(*WaitNcclId(dir_, "b", 128, 1000), b);
}

TEST_F(NcclIdStoreTest, MissingIdTimesOutNamingTheFile) {
  const Result<std::vector<uint8_t>> got = WaitNcclId(dir_, "nobody", 128, 50);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(got.status().message().find("nobody.nccl-id"), std::string::npos)
      << got.status().ToString();
}

TEST_F(NcclIdStoreTest, RemovedIdIsGone) {
  ASSERT_TRUE(PublishNcclId(dir_, "gone", SomeId()).ok());
  RemoveNcclId(dir_, "gone");
  EXPECT_FALSE(fs::exists(dir_ + "/gone.nccl-id"));
  RemoveNcclId(dir_, "gone");  // twice is fine
}

TEST_F(NcclIdStoreTest, RejectsAFileThatIsNotAnIdOfTheSize) {
  ASSERT_TRUE(PublishNcclId(dir_, "short", std::vector<uint8_t>(16, 7)).ok());
  Result<std::vector<uint8_t>> got = WaitNcclId(dir_, "short", 128, 1000);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(got.status().message().find("16 bytes, expected 128"), std::string::npos)
      << got.status().ToString();

  std::ofstream(dir_ + "/junk.nccl-id") << "hello\n";
  got = WaitNcclId(dir_, "junk", 128, 1000);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);

  std::ofstream(dir_ + "/nothex.nccl-id") << "treepo-nccl-id 1 zz\n";
  got = WaitNcclId(dir_, "nothex", 1, 1000);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("non-hex"), std::string::npos);
}

TEST_F(NcclIdStoreTest, RejectsARunIdThatIsNotAFileName) {
  for (const char* bad : {"a/b", "..", "x y", "r\n"}) {
    const Result<std::string> p = NcclIdPath(dir_, bad);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find("run_id"), std::string::npos);
    EXPECT_FALSE(PublishNcclId(dir_, bad, SomeId()).ok());
  }
  EXPECT_EQ(*NcclIdPath("/s", ""), "/s/treepo.nccl-id");
}

}  // namespace
}  // namespace treepo::collective

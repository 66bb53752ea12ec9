#include "common/collective/collective.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include "common/testing/paths.h"

namespace treepo::collective {
namespace {

namespace fs = std::filesystem;

class CollectiveTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::FreshTempDir("collective_test"); }
  void TearDown() override { fs::remove_all(dir_); }

  CollectiveOptions Options(int rank, int world) const {
    CollectiveOptions o;
    o.rank = rank;
    o.world_size = world;
    o.store_dir = dir_;
    o.run_id = "t";
    o.timeout_ms = 20000;
    return o;
  }

  // Runs body(rank, collective) on `world` threads, each its own rank.
  void RunRanks(int world, const std::function<void(int, Collective&)>& body) {
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r) {
      threads.emplace_back([&, r] {
        Result<std::unique_ptr<Collective>> c = CreateCollective(Options(r, world));
        ASSERT_TRUE(c.ok()) << c.status().ToString();
        EXPECT_EQ((*c)->rank(), r);
        EXPECT_EQ((*c)->world_size(), world);
        body(r, **c);
      });
    }
    for (std::thread& t : threads) t.join();
  }

  std::string dir_;
};

TEST_F(CollectiveTest, AllReduceSumsAndMaxesOverThreeRanks) {
  RunRanks(3, [](int r, Collective& c) {
    std::vector<float> f = {1.0f * r, 0.5f, -2.0f * r};
    ASSERT_TRUE(c.AllReduceSum(f).ok());
    EXPECT_EQ(f, (std::vector<float>{3.0f, 1.5f, -6.0f}));
    std::vector<double> d(1000);
    for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<double>(i) * (r + 1);
    ASSERT_TRUE(c.AllReduceSum(d).ok());
    for (size_t i = 0; i < d.size(); ++i) ASSERT_EQ(d[i], 6.0 * static_cast<double>(i));
    std::vector<double> m = {static_cast<double>(r), -static_cast<double>(r)};
    ASSERT_TRUE(c.AllReduceMax(m).ok());
    EXPECT_EQ(m, (std::vector<double>{2.0, 0.0}));
  });
}

TEST_F(CollectiveTest, BroadcastCopiesTheRootsBufferAndBarrierReturns) {
  RunRanks(2, [](int r, Collective& c) {
    std::vector<float> w = {r == 1 ? 7.0f : 0.0f, r == 1 ? -1.0f : 3.0f};
    ASSERT_TRUE(c.Broadcast(w, 1).ok());
    EXPECT_EQ(w, (std::vector<float>{7.0f, -1.0f}));
    EXPECT_TRUE(c.Barrier().ok());
    EXPECT_EQ(c.Broadcast(w, 2).code(), StatusCode::kInvalidArgument);
  });
}

TEST_F(CollectiveTest, AllRanksEqualSpotsADifferentValue) {
  RunRanks(2, [](int r, Collective& c) {
    Result<bool> same = AllRanksEqual(c, 0x0123456789abcdefULL);
    ASSERT_TRUE(same.ok());
    EXPECT_TRUE(*same);
    // Differs in the highest 16 bits only.
    Result<bool> differ = AllRanksEqual(c, 0x0123456789abcdefULL + (uint64_t{r} << 48));
    ASSERT_TRUE(differ.ok());
    EXPECT_FALSE(*differ);
  });
}

TEST_F(CollectiveTest, OneRankNeedsNoStoreAndChangesNothing) {
  CollectiveOptions o;
  Result<std::unique_ptr<Collective>> c = CreateCollective(o);
  ASSERT_TRUE(c.ok());
  std::vector<float> f = {1.5f};
  ASSERT_TRUE((*c)->AllReduceSum(f).ok());
  EXPECT_EQ(f[0], 1.5f);
  EXPECT_TRUE(*AllRanksEqual(**c, 42));
}

TEST_F(CollectiveTest, BadOptionsAreRefusedByName) {
  CollectiveOptions o = Options(0, 2);
  o.backend = "mpi";
  Status st = CreateCollective(o).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'mpi'"), std::string::npos) << st.message();
  o = Options(2, 2);
  EXPECT_EQ(CreateCollective(o).status().code(), StatusCode::kInvalidArgument);
  o = Options(0, 2);
  o.store_dir.clear();
  st = CreateCollective(o).status();
  EXPECT_NE(st.message().find("store_dir"), std::string::npos) << st.message();
  o = Options(0, 2);
  o.backend = "nccl";
  o.timeout_ms = 300;
  st = CreateCollective(o).status();
  const std::vector<std::string_view> backends = CollectiveBackends();
  if (std::find(backends.begin(), backends.end(), "nccl") == backends.end()) {
    EXPECT_EQ(st.code(), StatusCode::kUnimplemented);
    EXPECT_NE(st.message().find("nccl"), std::string::npos);
  } else {
    // The CUDA build: no device (kFailedPrecondition, naming the fallback) or no rank 1.
    EXPECT_TRUE(st.code() == StatusCode::kFailedPrecondition ||
                st.code() == StatusCode::kDeadlineExceeded)
        << st.ToString();
    if (st.code() == StatusCode::kFailedPrecondition) {
      EXPECT_NE(st.message().find("'gloo'"), std::string::npos) << st.message();
    }
  }
}

TEST_F(CollectiveTest, AMissingRankTimesOutWithTheDirectoryNamed) {
  CollectiveOptions o = Options(0, 2);
  o.timeout_ms = 300;
  const Status st = CreateCollective(o).status();
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded) << st.ToString();
  EXPECT_NE(st.message().find(dir_), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace treepo::collective

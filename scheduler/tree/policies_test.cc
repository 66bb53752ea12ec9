#include "scheduler/tree/policies.h"

#include <gtest/gtest.h>

namespace treepo::scheduler {
namespace {

std::vector<BranchPath> Paths(std::vector<double> means) {
  std::vector<BranchPath> out;
  for (double m : means) {
    BranchPath p;
    p.response_tokens = 10;
    p.cum_logprob = m * 10;
    p.last_mean_logprob = m;
    out.push_back(p);
  }
  return out;
}

TEST(PoliciesTest, FixedAvgFloorsAndGivesRemainderToLast) {
  auto p = MakeBranchingPolicy(BranchingOptions{});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Split(7, Paths({0, 0, 0})), (std::vector<int>{2, 2, 3}));
  EXPECT_EQ((*p)->Split(3, Paths({0, 0, 0})), (std::vector<int>{1, 1, 1}));
  EXPECT_EQ((*p)->Split(8, Paths({0, 0})), (std::vector<int>{4, 4}));
}

TEST(PoliciesTest, LogprobWeightedFavoursLowProbabilityPaths) {
  BranchingOptions o;
  o.policy = "logprob_weighted";
  o.score = "mean";
  auto p = MakeBranchingPolicy(o);
  ASSERT_TRUE(p.ok());
  // s - min = 2, 1, 0; weights ~ e^-2, e^-1, 1 = .090, .245, .665; rest 3 -> .27, .73, 1.99:
  // floors 0, 0, 1; largest remainders .99 (path 2), .73 (path 1).
  EXPECT_EQ((*p)->Split(6, Paths({-1, -2, -3})), (std::vector<int>{1, 2, 3}));
  o.favour_low_prob = false;
  auto hi = MakeBranchingPolicy(o);
  ASSERT_TRUE(hi.ok());
  EXPECT_EQ((*hi)->Split(6, Paths({-1, -2, -3})), (std::vector<int>{3, 2, 1}));
  EXPECT_EQ((*hi)->Split(3, Paths({-1, -2, -3})), (std::vector<int>{1, 1, 1}));
  o.score = "bogus";
  EXPECT_EQ(MakeBranchingPolicy(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(PoliciesTest, DepthFirstFallbackSpendsRemainingInCopiesOfB) {
  auto f = MakeFallbackPolicy("depth_first");
  ASSERT_TRUE(f.ok());
  FallbackParams p{/*remaining=*/5, /*branch_factor=*/2, /*segment_tokens=*/4,
                   /*window_tokens=*/4, /*max_depth=*/3};
  FallbackCandidate c;
  c.path = {NodeId(10), NodeId(11), NodeId(12)};
  c.response_tokens = 10;  // n = 3: j in {0, 1, 2}, capped at d - 1 = 2
  SplitMixRng rng(1);
  const auto plan = (*f)->Plan({c}, p, rng);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].copies + plan[1].copies + plan[2].copies, 5);
  EXPECT_EQ(plan[2].copies, 1);
  for (const auto& b : plan) {
    EXPECT_TRUE(!b.parent || *b.parent == NodeId(10) || *b.parent == NodeId(11));
  }
  const auto bare = (*f)->Plan({}, p, rng);
  for (const auto& b : bare) EXPECT_FALSE(b.parent.has_value());
  EXPECT_EQ(MakeFallbackPolicy("x").status().code(), StatusCode::kInvalidArgument);
}

TEST(PoliciesTest, UniformIntCoversRange) {
  SplitMixRng rng(3);
  std::vector<int> hits(5, 0);
  for (int i = 0; i < 1000; ++i) ++hits[rng.UniformInt(2, 6) - 2];
  for (int h : hits) EXPECT_GT(h, 100);
}

}  // namespace
}  // namespace treepo::scheduler

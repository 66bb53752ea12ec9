#include "learner/advantage/advantage.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace treepo::learner {
namespace {

// Leaves given by (path, reward); tokens default to 1.
QueryLeaves Make(const std::vector<std::pair<std::vector<uint64_t>, float>>& leaves) {
  QueryLeaves q;
  q.query_id = "q";
  for (const auto& [path, r] : leaves) {
    q.leaves.push_back(LeafSample{path.back(), r, path, 1});
  }
  return q;
}

std::vector<double> Estimate(std::string_view name, const QueryLeaves& q) {
  auto est = MakeAdvantageEstimator(name);
  EXPECT_TRUE(est.ok()) << est.status().message();
  return (*est)->Compute(q);
}

// The paper's Figure 3 tree. Node ids: a 1, b 2, c 3, c1 4, c2 5, c3 6, c11 7, c12 8,
// c21 9, c22 10, c23 11.
QueryLeaves Figure3() {
  return Make({{{1}, -1},
               {{2}, 1},
               {{3, 6}, -1},
               {{3, 4, 7}, -1},
               {{3, 4, 8}, -1},
               {{3, 5, 9}, 1},
               {{3, 5, 10}, 1},
               {{3, 5, 11}, -1}});
}

TEST(AdvantageTest, Figure3CheckValues) {
  const std::vector<double> a = Estimate("treepo", Figure3());
  const std::vector<double> want = {-0.75,   1.25,   -0.7083, -0.4722,
                                    -0.4722, 1.0833, 1.0833,  -0.9167};
  ASSERT_EQ(a.size(), want.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], want[i], 1e-4) << i;
}

std::vector<std::vector<double>> Segments(std::string_view name, const QueryLeaves& q) {
  auto est = MakeAdvantageEstimator(name);
  EXPECT_TRUE(est.ok()) << est.status().message();
  EXPECT_TRUE((*est)->segmented());
  return (*est)->ComputeSegments(q);
}

// Figure 3 by hand: mean -0.25, unbiased std 1.0351 (+1e-6); subtree values V(c) = -1/3,
// V(c1) = -1, V(c2) = 1/3. For c22 (path c, c2, c22) the local terms are V(c) - mean = -1/12,
// V(c2) - V(c) = 2/3, R - V(c2) = 2/3; the global ones V - mean: -1/12, 7/12, 5/4.
TEST(AdvantageTest, Figure3SegmentValues) {
  const double sd = std::sqrt(7.5 / 7.0) + 1e-6;  // squared deviations 5 x 0.5625 + 3 x 1.5625
  const auto local = Segments("tree_segment", Figure3());
  const std::vector<std::vector<double>> want = {{-0.75},
                                                 {1.25},
                                                 {-1.0 / 12, -2.0 / 3},
                                                 {-1.0 / 12, -2.0 / 3, 0.0},
                                                 {-1.0 / 12, -2.0 / 3, 0.0},
                                                 {-1.0 / 12, 2.0 / 3, 2.0 / 3},
                                                 {-1.0 / 12, 2.0 / 3, 2.0 / 3},
                                                 {-1.0 / 12, 2.0 / 3, -4.0 / 3}};
  ASSERT_EQ(local.size(), want.size());
  const std::vector<double> grpo = Estimate("grpo", Figure3());
  const std::vector<double> leaf = Estimate("tree_segment", Figure3());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(local[i].size(), want[i].size()) << i;
    double sum = 0.0;
    for (size_t k = 0; k < want[i].size(); ++k) {
      EXPECT_NEAR(local[i][k], want[i][k] / sd, 1e-6) << i << " " << k;
      sum += local[i][k];
    }
    // Along a path the local terms add up to the leaf's grpo advantage, Compute()'s value.
    EXPECT_NEAR(sum, grpo[i], 1e-6) << i;
    EXPECT_NEAR(leaf[i], grpo[i], 1e-9) << i;
  }
  const auto both = Segments("tree_segment_global", Figure3());
  EXPECT_NEAR(both[6][0], (-1.0 / 12 - 1.0 / 12) / sd, 1e-6);
  EXPECT_NEAR(both[6][1], (2.0 / 3 + 7.0 / 12) / sd, 1e-6);
  EXPECT_NEAR(both[6][2], (2.0 / 3 + 5.0 / 4) / sd, 1e-6);
  EXPECT_NEAR(both[0][0], (-0.75 - 0.75) / sd, 1e-6);
}

// A chain of single-child nodes under a branch point is one decision: every node of it gets
// the value change at the branch (not 0 after its first node); a depth-1 node holding every
// leaf changes nothing.
TEST(AdvantageTest, SegmentValuesOfAChainAreItsBranchPoints) {
  const QueryLeaves q = Make({{{1, 2, 3, 4}, 1.0f}, {{1, 5}, -1.0f}, {{1, 2, 6}, -1.0f}});
  const double sd = std::sqrt(4.0 / 3.0) + 1e-6;  // mean -1/3
  const auto a = Segments("tree_segment", q);
  // V(1) = -1/3 (all leaves), V(2) = 0, V(3) = V(4) = 1, V(5) = -1, V(6) = -1.
  EXPECT_NEAR(a[0][0], 0.0, 1e-9);
  EXPECT_NEAR(a[0][1], (0.0 + 1.0 / 3) / sd, 1e-6);
  EXPECT_NEAR(a[0][2], 1.0 / sd, 1e-6);
  EXPECT_NEAR(a[0][3], 1.0 / sd, 1e-6);
  EXPECT_NEAR(a[1][1], (-1.0 + 1.0 / 3) / sd, 1e-6);
  EXPECT_NEAR(a[2][2], -1.0 / sd, 1e-6);
  // All rewards equal: nothing to learn anywhere.
  for (const auto& row : Segments("tree_segment_global", Make({{{1, 2}, 1.0f}, {{1, 3}, 1.0f}}))) {
    for (double v : row) EXPECT_NEAR(v, 0.0, 1e-9);
  }
}

TEST(AdvantageTest, Figure3SizeWeighted) {
  const std::vector<double> a = Estimate("treepo_size_weighted", Figure3());
  // c22: groups root (8, term 1.25), c (6, 4/3), c2 (3, 2/3).
  EXPECT_NEAR(a[6], (8 * 1.25 + 6 * (4.0 / 3) + 3 * (2.0 / 3)) / 17.0, 1e-9);
  // a: only the root group.
  EXPECT_NEAR(a[0], -0.75, 1e-9);
  // c11: root -0.75, c (6) -2/3, c1 (2) 0.
  EXPECT_NEAR(a[3], (8 * -0.75 + 6 * (-2.0 / 3) + 2 * 0.0) / 16.0, 1e-9);
}

TEST(AdvantageTest, SingleLeafIsZeroEverywhere) {
  const QueryLeaves q = Make({{{5, 6}, 1.0f}});
  for (std::string_view name : AdvantageEstimatorNames()) {
    if (name == "reinforce_pp") continue;  // no per-query baseline: the raw reward (below)
    const std::vector<double> a = Estimate(name, q);
    ASSERT_EQ(a.size(), 1u) << name;
    EXPECT_EQ(a[0], 0.0) << name;
  }
}

TEST(AdvantageTest, AllRewardsEqualGiveZero) {
  QueryLeaves q = Figure3();
  for (LeafSample& l : q.leaves) l.reward = 0.5f;
  for (std::string_view name : AdvantageEstimatorNames()) {
    if (name == "reinforce_pp") continue;  // no per-query baseline: the raw reward (below)
    for (double a : Estimate(name, q)) EXPECT_NEAR(a, 0.0, 1e-12) << name;
  }
}

TEST(AdvantageTest, ChainOfSingleChildrenCountsRepeatedGroups) {
  // x(1) -> y(2) -> {y1(3): +1, y2(4): -1}; z(5): -1.
  const QueryLeaves q = Make({{{1, 2, 3}, 1}, {{1, 2, 4}, -1}, {{5}, -1}});
  const std::vector<double> a = Estimate("treepo", q);
  const double root_mean = -1.0 / 3;
  // y1: root term 4/3, x term 1, y term 1 (same group again), own node alone: skipped.
  EXPECT_NEAR(a[0], ((1 - root_mean) + 1 + 1) / 3, 1e-12);
  EXPECT_NEAR(a[1], ((-1 - root_mean) - 1 - 1) / 3, 1e-12);
  EXPECT_NEAR(a[2], -1 - root_mean, 1e-12);
}

TEST(AdvantageTest, FallbackShapedTree) {
  // Fallback refill: leaves of unequal depth, a restart from the prompt (its own depth-1
  // node 9) and a cut that reuses ancestors 1 -> 2 under an already finished sibling.
  const QueryLeaves q = Make({{{1, 2, 3}, 1}, {{1, 2, 7, 8}, -1}, {{1, 4}, -1}, {{9}, 1}});
  const std::vector<double> a = Estimate("treepo", q);
  const double m0 = 0.0, m1 = -1.0 / 3, m2 = 0.0;
  EXPECT_NEAR(a[0], ((1 - m0) + (1 - m1) + (1 - m2)) / 3, 1e-12);
  EXPECT_NEAR(a[1], ((-1 - m0) + (-1 - m1) + (-1 - m2)) / 3, 1e-12);  // 7 and 8: one leaf each
  EXPECT_NEAR(a[2], ((-1 - m0) + (-1 - m1)) / 2, 1e-12);
  EXPECT_NEAR(a[3], 1 - m0, 1e-12);
}

TEST(AdvantageTest, OtherEstimators) {
  const QueryLeaves q = Make({{{1}, 1}, {{2}, 0}, {{3}, 0}, {{4}, -1}});
  // mean 0, unbiased std sqrt(2/3).
  const double sd = std::sqrt(2.0 / 3);
  const std::vector<double> grpo = Estimate("grpo", q);
  EXPECT_NEAR(grpo[0], 1 / (sd + 1e-6), 1e-9);
  EXPECT_NEAR(grpo[3], -1 / (sd + 1e-6), 1e-9);
  EXPECT_NEAR(grpo[1], 0.0, 1e-12);
  const std::vector<double> dr = Estimate("dr_grpo", q);
  EXPECT_NEAR(dr[0], 1.0, 1e-12);
  EXPECT_NEAR(dr[3], -1.0, 1e-12);
  const std::vector<double> rloo = Estimate("rloo", q);
  EXPECT_NEAR(rloo[0], 1 - (-1.0 / 3), 1e-12);
  EXPECT_NEAR(rloo[1], 0 - 0.0, 1e-12);
  EXPECT_NEAR(rloo[3], -1 - (1.0 / 3), 1e-12);
  const std::vector<double> rpp = Estimate("reinforce_pp_baseline", q);
  EXPECT_NEAR(rpp[0], 1.0, 1e-12);
  std::map<std::string, bool> whiten;
  for (const std::string& n : AdvantageEstimatorNames())
    whiten[n] = (*MakeAdvantageEstimator(n))->whiten();
  EXPECT_TRUE(whiten["treepo"]);
  EXPECT_TRUE(whiten["treepo_size_weighted"]);
  EXPECT_TRUE(whiten["reinforce_pp_baseline"]);
  EXPECT_FALSE(whiten["grpo"]);
  EXPECT_FALSE(whiten["dr_grpo"]);
  EXPECT_FALSE(whiten["rloo"]);
  EXPECT_TRUE(whiten["reinforce_pp"]);
}

// REINFORCE++: the return of each leaf on every one of its tokens, normalised over the whole
// batch's tokens (no per-query baseline), so a query whose leaves all got the same reward
// still gets non-zero advantages when the batch's mean differs.
TEST(AdvantageTest, ReinforcePpNormalisesOverTheGlobalBatch) {
  QueryLeaves a = Make({{{1}, 1}, {{2}, 1}});  // all correct
  QueryLeaves b = Make({{{3}, -1}, {{4}, 1}});
  a.leaves[0].tokens = 2, a.leaves[1].tokens = 1, b.leaves[0].tokens = 3, b.leaves[1].tokens = 2;
  const std::vector<QueryLeaves> batch = {a, b};
  auto est = MakeAdvantageEstimator("reinforce_pp");
  ASSERT_TRUE(est.ok());
  const BatchAdvantages adv = ComputeBatchAdvantages(**est, batch);
  EXPECT_EQ(adv.raw[0], (std::vector<double>{1, 1}));
  EXPECT_EQ(adv.raw[1], (std::vector<double>{-1, 1}));
  // Tokens: 2 + 1 + 2 of reward +1, 3 of -1: N = 8, mean 2/8, sum of squares
  // 5 (3/4)^2 + 3 (5/4)^2 = 7.5, unbiased variance 7.5 / 7.
  const double mean = 0.25, sd = std::sqrt(7.5 / 7 + 1e-8);
  EXPECT_NEAR(adv.whitened[0][0], (1 - mean) / sd, 1e-12);
  EXPECT_NEAR(adv.whitened[0][1], (1 - mean) / sd, 1e-12);
  EXPECT_NEAR(adv.whitened[1][0], (-1 - mean) / sd, 1e-12);
  EXPECT_NEAR(adv.whitened[1][1], (1 - mean) / sd, 1e-12);
  // The baseline variant subtracts each query's mean first: query a is all zeros.
  auto base = MakeAdvantageEstimator("reinforce_pp_baseline");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(ComputeBatchAdvantages(**base, batch).raw[0], (std::vector<double>{0, 0}));
}

TEST(AdvantageTest, RegistryRefusesDuplicatesAndNamesUnknowns) {
  EXPECT_EQ(
      AdvantageEstimators()
          .Register(
              "treepo",
              [] { return Result<std::unique_ptr<AdvantageEstimator>>(InvalidArgument("unused")); })
          .code(),
      StatusCode::kAlreadyExists);
  auto bad = MakeAdvantageEstimator("nope");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("reinforce_pp"), std::string::npos);
  EXPECT_EQ(AdvantageEstimatorNames().front(), "treepo");
}

TEST(AdvantageTest, UnknownNameListsNames) {
  auto est = MakeAdvantageEstimator("ppo");
  ASSERT_FALSE(est.ok());
  EXPECT_EQ(est.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(est.status().message().find("treepo_size_weighted"), std::string::npos);
  EXPECT_NE(est.status().message().find("rloo"), std::string::npos);
}

TEST(AdvantageTest, WhiteningByHand) {
  // Two queries; leaves (advantage, tokens): (1, 2), (-1, 1) | (0, 1). N = 4 tokens.
  std::vector<QueryLeaves> batch(2);
  batch[0].leaves = {LeafSample{1, 0, {1}, 2}, LeafSample{2, 0, {2}, 1}};
  batch[1].leaves = {LeafSample{3, 0, {3}, 1}};
  const std::vector<std::vector<double>> adv = {{1.0, -1.0}, {0.0}};
  // mean = (2 - 1 + 0) / 4 = 0.25; ss = 2 * 0.75^2 + 1.25^2 + 0.25^2 = 2.75; var = 2.75 / 3.
  const double sd = std::sqrt(2.75 / 3 + 1e-8);
  const auto w = WhitenByTokens(batch, adv);
  EXPECT_NEAR(w[0][0], 0.75 / sd, 1e-12);
  EXPECT_NEAR(w[0][1], -1.25 / sd, 1e-12);
  EXPECT_NEAR(w[1][0], -0.25 / sd, 1e-12);
  // A zero-token leaf does not move the statistics but is still whitened.
  batch[1].leaves.push_back(LeafSample{4, 0, {4}, 0});
  const auto w2 = WhitenByTokens(batch, {{1.0, -1.0}, {0.0, 5.0}});
  EXPECT_NEAR(w2[0][0], 0.75 / sd, 1e-12);
  EXPECT_NEAR(w2[1][1], 4.75 / sd, 1e-12);
}

TEST(AdvantageTest, BatchWhitensOnlyWhenEstimatorSaysSo) {
  std::vector<QueryLeaves> batch = {Figure3()};
  auto grpo = MakeAdvantageEstimator("grpo");
  const BatchAdvantages g = ComputeBatchAdvantages(**grpo, batch);
  EXPECT_EQ(g.raw, g.whitened);
  auto treepo = MakeAdvantageEstimator("treepo");
  const BatchAdvantages t = ComputeBatchAdvantages(**treepo, batch);
  double mean = 0.0;
  for (double a : t.whitened[0]) mean += a;
  EXPECT_NEAR(mean, 0.0, 1e-9);
  EXPECT_NEAR(t.raw[0][0], -0.75, 1e-9);
}

TEST(AdvantageTest, LeavesFromTreeFollowsParents) {
  TreeRecord t;
  t.query_id = "q7";
  auto node = [](uint64_t id, std::optional<uint64_t> parent, int depth) {
    TreeNodeRecord n;
    n.id = id;
    n.parent = parent;
    n.depth = depth;
    return n;
  };
  t.nodes = {node(1, std::nullopt, 1), node(2, 1, 2), node(3, 1, 2)};
  t.leaves = {TreeLeafRecord{2, 1.0f, FinishReason::kEos, 7},
              TreeLeafRecord{3, -1.0f, FinishReason::kEos, 9}};
  auto q = LeavesFromTree(t);
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->leaves[0].path, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(q->leaves[1].path, (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(q->leaves[1].tokens, 9);
  t.leaves[0].node = 42;
  EXPECT_EQ(LeavesFromTree(t).status().code(), StatusCode::kInvalidArgument);
  t.leaves[0].node = 2;
  t.nodes[0].parent = 3;  // cycle 1 -> 3 -> 1
  EXPECT_EQ(LeavesFromTree(t).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::learner

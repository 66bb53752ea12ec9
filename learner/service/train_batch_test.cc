#include "learner/service/train_batch.h"

#include <gtest/gtest.h>

#include <cmath>

namespace treepo::learner {
namespace {

// Prompt [1 5 6]; node 1 [7 8] (depth 1) with children 2 [9] and 3 [10 2]; leaves 2 (+1) and
// 3 (-1). Versions: node 1 by version 3, node 2 by 4 (async), node 3 by 3.
TreeRecord SmallTree() {
  TreeRecord t;
  t.query_id = "q1";
  t.prompt_tokens = {1, 5, 6};
  TreeNodeRecord n1{1, std::nullopt, 1, {7, 8}, {-1.0f, -2.0f}, "", FinishReason::kNone, 1, 3};
  TreeNodeRecord n2{2, 1, 2, {9}, {-0.5f}, "", FinishReason::kEos, 1, 4};
  TreeNodeRecord n3{3, 1, 2, {10, 2}, {-0.25f, -0.75f}, "", FinishReason::kEos, 2, 3};
  t.nodes = {n1, n2, n3};
  t.leaves = {{2, 1.0f, FinishReason::kEos, 3}, {3, -1.0f, FinishReason::kEos, 4}};
  return t;
}

TEST(TrainBatchTest, OneSequencePerLeafWithAdvantageOnResponseTokensOnly) {
  auto est = MakeAdvantageEstimator("grpo");
  ASSERT_TRUE(est.ok());
  auto b = BuildLearnerBatch({SmallTree()}, **est, 64);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_EQ(b->sequences.size(), 2u);
  const TrainSequence& s0 = b->sequences[0];
  EXPECT_EQ(s0.tokens, (std::vector<int32_t>{1, 5, 6, 7, 8, 9}));
  EXPECT_EQ(s0.prompt_len, 3);
  EXPECT_EQ(s0.response_tokens(), 3);
  EXPECT_EQ(s0.rollout_logp, (std::vector<float>{-1.0f, -2.0f, -0.5f}));
  EXPECT_EQ(s0.versions, (std::vector<uint64_t>{3, 3, 4}));
  // grpo: (R - mean) / (unbiased std + 1e-6) = 1 / sqrt(2).
  ASSERT_EQ(s0.advantages.size(), 3u);
  for (float a : s0.advantages) EXPECT_NEAR(a, 1.0 / std::sqrt(2.0), 1e-5);
  const TrainSequence& s1 = b->sequences[1];
  EXPECT_EQ(s1.tokens, (std::vector<int32_t>{1, 5, 6, 7, 8, 10, 2}));
  for (float a : s1.advantages) EXPECT_NEAR(a, -1.0 / std::sqrt(2.0), 1e-5);
  EXPECT_EQ(b->response_tokens, 7);
  EXPECT_NEAR(b->reward_mean, 0.0, 1e-9);
  EXPECT_EQ(b->truncated_sequences, 0);
}

TEST(TrainBatchTest, SegmentAdvantagesFollowTheNodesOfEachPath) {
  auto est = MakeAdvantageEstimator("tree_segment");
  ASSERT_TRUE(est.ok());
  auto b = BuildLearnerBatch({SmallTree()}, **est, 64);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  // Node 1 holds both leaves (value change 0); nodes 2 and 3 carry +-1 / (std sqrt 2).
  const float h = static_cast<float>(1.0 / (std::sqrt(2.0) + 1e-6));
  EXPECT_EQ(b->sequences[0].advantages, (std::vector<float>{0.0f, 0.0f, h}));
  EXPECT_EQ(b->sequences[1].advantages, (std::vector<float>{0.0f, 0.0f, -h, -h}));
  EXPECT_NEAR(b->advantage_mean, -h / 7.0, 1e-6);
  // Cut to 3 response tokens: node 3 keeps one token.
  auto c = BuildLearnerBatch({SmallTree()}, **est, 6);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->sequences[1].advantages, (std::vector<float>{0.0f, 0.0f, -h}));
}

// A per-segment estimator that asks for whitening: depth k gets k, whitened over the tokens.
class DepthEstimator : public AdvantageEstimator {
 public:
  std::string_view name() const override { return "depth"; }
  bool whiten() const override { return true; }
  bool segmented() const override { return true; }
  std::vector<double> Compute(const QueryLeaves& q) const override {
    return std::vector<double>(q.leaves.size(), 0.0);
  }
  std::vector<std::vector<double>> ComputeSegments(const QueryLeaves& q) const override {
    std::vector<std::vector<double>> out;
    for (const LeafSample& l : q.leaves) {
      out.emplace_back();
      for (size_t k = 0; k < l.path.size(); ++k) out.back().push_back(static_cast<double>(k + 1));
    }
    return out;
  }
};

TEST(TrainBatchTest, SegmentAdvantagesAreWhitenedOverTheTrainedTokens) {
  auto b = BuildLearnerBatch({SmallTree()}, DepthEstimator(), 64);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  // Tokens: 1 1 2 | 1 1 2 2 (the paths' depths), whitened with the unbiased variance.
  const std::vector<double> raw = {1, 1, 2, 1, 1, 2, 2};
  double mean = 0.0, ss = 0.0;
  for (double v : raw) mean += v / 7.0;
  for (double v : raw) ss += (v - mean) * (v - mean);
  const double inv = 1.0 / std::sqrt(ss / 6.0 + 1e-8);
  EXPECT_NEAR(b->sequences[0].advantages[0], (1 - mean) * inv, 1e-5);
  EXPECT_NEAR(b->sequences[1].advantages[3], (2 - mean) * inv, 1e-5);
  EXPECT_NEAR(b->advantage_mean, 0.0, 1e-6);
  // Two data-parallel ranks holding the same tree: the sums double, so the mean stays and the
  // variance is taken over 14 tokens.
  int calls = 0;
  auto reduce = [&](std::span<double> v) {
    ++calls;
    for (double& x : v) x *= 2;
    return OkStatus();
  };
  auto c = BuildLearnerBatch({SmallTree()}, DepthEstimator(), 64, reduce);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(calls, 2);
  const double inv2 = 1.0 / std::sqrt(2 * ss / 13.0 + 1e-8);
  EXPECT_NEAR(c->sequences[1].advantages[3], (2 - mean) * inv2, 1e-5);
}

TEST(TrainBatchTest, TruncatesToResponseTokensAndMaxSeqLen) {
  auto est = MakeAdvantageEstimator("treepo");
  ASSERT_TRUE(est.ok());
  TreeRecord t = SmallTree();
  t.leaves[1].response_tokens = 3;  // the record's own cap: drops the final token
  auto b = BuildLearnerBatch({t}, **est, 64);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->sequences[1].tokens, (std::vector<int32_t>{1, 5, 6, 7, 8, 10}));
  auto c = BuildLearnerBatch({SmallTree()}, **est, 5);  // room for 2 response tokens
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->truncated_sequences, 2);
  for (const TrainSequence& s : c->sequences) {
    EXPECT_EQ(s.tokens.size(), 5u);
    EXPECT_EQ(s.advantages.size(), 2u);
    EXPECT_EQ(s.rollout_logp.size(), 2u);
  }
}

TEST(TrainBatchTest, WhitenedTreepoAdvantagesHaveZeroTokenMean) {
  auto est = MakeAdvantageEstimator("treepo");
  ASSERT_TRUE(est.ok());
  TreeRecord t = SmallTree();
  t.leaves[0].response_tokens = 3;
  auto b = BuildLearnerBatch({t, SmallTree()}, **est, 64);
  ASSERT_TRUE(b.ok());
  EXPECT_NEAR(b->advantage_mean, 0.0, 1e-6);
  EXPECT_EQ(b->sequences.size(), 4u);
  EXPECT_EQ(b->sequences[2].tree, 1u);
}

TEST(TrainBatchTest, RefusesAPromptThatLeavesNoRoom) {
  auto est = MakeAdvantageEstimator("treepo");
  ASSERT_TRUE(est.ok());
  EXPECT_EQ(BuildLearnerBatch({SmallTree()}, **est, 3).status().code(),
            StatusCode::kInvalidArgument);
  TreeRecord bad = SmallTree();
  bad.leaves[0].node = 99;
  EXPECT_FALSE(BuildLearnerBatch({bad}, **est, 64).ok());
}

}  // namespace
}  // namespace treepo::learner

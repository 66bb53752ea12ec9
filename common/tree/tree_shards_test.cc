#include "common/tree/tree_shards.h"

#include <gtest/gtest.h>

namespace treepo {
namespace {

// A tree of `leaves` depth-1 leaves of `tokens` tokens each under a 2-token prompt.
TreeRecord Tree(int leaves, int tokens) {
  TreeRecord t;
  t.query_id = "q";
  t.prompt_tokens = {1, 2};
  for (int i = 0; i < leaves; ++i) {
    TreeNodeRecord n;
    n.id = static_cast<uint64_t>(i + 1);
    n.depth = 1;
    n.tokens.assign(static_cast<size_t>(tokens), 3);
    n.logprobs.assign(static_cast<size_t>(tokens), -1.0f);
    t.nodes.push_back(n);
    t.leaves.push_back({n.id, 0.0f, FinishReason::kEos, tokens});
  }
  return t;
}

TEST(TreeShardsTest, TokensCountThePromptOncePerLeafAndSharedNodesPerPath) {
  TreeRecord t = Tree(2, 5);
  EXPECT_EQ(TreeTrainTokens(t), 2 * (2 + 5));
  // A child under node 1 shares node 1's 5 tokens with it on its path.
  TreeNodeRecord c;
  c.id = 9;
  c.parent = 1;
  c.depth = 2;
  c.tokens = {4, 4, 4};
  c.logprobs = {-1, -1, -1};
  t.nodes.push_back(c);
  t.leaves.push_back({9, 1.0f, FinishReason::kEos, 8});
  EXPECT_EQ(TreeTrainTokens(t), 2 * 7 + (2 + 5 + 3));
}

TEST(TreeShardsTest, BalancesTokensAndKeepsBatchOrderWithinARank) {
  // Tokens 10, 40, 20, 30, 20 (leaves x (2 + 8)); in decreasing order each goes to the lighter
  // rank: 40 -> r0, 30 -> r1, 20 -> r1, 20 -> r0, 10 -> r1: 60 / 60.
  std::vector<TreeRecord> trees = {Tree(1, 8), Tree(4, 8), Tree(2, 8), Tree(3, 8), Tree(2, 8)};
  const auto shards = ShardTreesByTokens(trees, 2);
  ASSERT_EQ(shards.size(), 2u);
  EXPECT_EQ(shards[0], (std::vector<size_t>{1, 4}));
  EXPECT_EQ(shards[1], (std::vector<size_t>{0, 2, 3}));
  int64_t load[2] = {0, 0};
  for (int r = 0; r < 2; ++r) {
    for (size_t i : shards[r]) load[r] += TreeTrainTokens(trees[i]);
  }
  EXPECT_EQ(load[0], 60);
  EXPECT_EQ(load[1], 60);
}

TEST(TreeShardsTest, MoreRanksThanTreesLeavesSomeEmptyAndOneRankTakesAll) {
  std::vector<TreeRecord> trees = {Tree(1, 3), Tree(2, 3)};
  const auto four = ShardTreesByTokens(trees, 4);
  ASSERT_EQ(four.size(), 4u);
  EXPECT_EQ(four[0], (std::vector<size_t>{1}));
  EXPECT_EQ(four[1], (std::vector<size_t>{0}));
  EXPECT_TRUE(four[2].empty());
  EXPECT_TRUE(four[3].empty());
  EXPECT_EQ(ShardTreesByTokens(trees, 1)[0], (std::vector<size_t>{0, 1}));
  EXPECT_TRUE(ShardTreesByTokens({}, 2)[0].empty());
}

}  // namespace
}  // namespace treepo

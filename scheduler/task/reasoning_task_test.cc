#include "scheduler/task/reasoning_task.h"

#include <gtest/gtest.h>

#include <set>

#include "scheduler/reward/reward_fn.h"

namespace treepo::scheduler {
namespace {

TEST(ReasoningTaskTest, ParsesChainPrompts) {
  auto c = ParseChainPrompt("Q: 6+3-3+2+3-4=?\nA:");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->terms, (std::vector<int64_t>{6, 3, 3, 2, 3, 4}));
  EXPECT_EQ(c->ops, (std::vector<char>{'+', '-', '+', '+', '-'}));
  for (const char* bad : {"", "Q: 6=?\nA:", "Q: 6*7=?\nA:", "Q: 6++7=?\nA:", "6+7=?\nA:",
                          "Q: 6+7=?", "Q: 6+x=?\nA:", "Q: 6+7-=?\nA:"}) {
    auto r = ParseChainPrompt(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_NE(r.status().message().find("not a chain"), std::string::npos);
  }
}

TEST(ReasoningTaskTest, RewritesTheExpressionOneStepAtATime) {
  const ChainTerms c{{6, 3, 3, 2, 3, 4}, {'+', '-', '+', '+', '-'}};
  std::string answer;
  EXPECT_EQ(ReasoningSolution(c, -1, 0, &answer),
            " 9-3+2+3-4 = 6+2+3-4 = 8+3-4 = 11-4 = 7 \\boxed{7}");
  EXPECT_EQ(answer, "7");
}

TEST(ReasoningTaskTest, ASlipCarriesThroughToAWrongAnswer) {
  const ChainTerms c{{6, 3, 3, 2, 3, 4}, {'+', '-', '+', '+', '-'}};
  std::string answer;
  // Step 2 (6+2 = 8) slips to 10; the rest is right from there.
  EXPECT_EQ(ReasoningSolution(c, 2, 2, &answer),
            " 9-3+2+3-4 = 6+2+3-4 = 10+3-4 = 13-4 = 9 \\boxed{9}");
  EXPECT_EQ(answer, "9");
  EXPECT_EQ(ReasoningSolution(c, 4, -1, &answer),
            " 9-3+2+3-4 = 6+2+3-4 = 8+3-4 = 11-4 = 6 \\boxed{6}");
}

TEST(ReasoningTaskTest, RandomSlipsAreMidChainAndNeverNegative) {
  std::mt19937_64 rng(7);
  // 5-5+... keeps the running value at 0 after step 0, so a downward slip after it is refused.
  const ChainTerms low{{5, 5, 1, 1, 1}, {'-', '+', '-', '+'}};
  std::set<int> steps;
  for (int i = 0; i < 500; ++i) {
    const Slip s = RandomSlip(low, 3, rng);
    steps.insert(s.step);
    EXPECT_GE(s.step, 1);
    EXPECT_LE(s.step, 3);
    EXPECT_NE(s.delta, 0);
    EXPECT_LE(std::abs(s.delta), 3);
    std::string answer;
    ReasoningSolution(low, s.step, s.delta, &answer);  // TREEPO_CHECKs values >= 0
    EXPECT_NE(answer, "1");
  }
  EXPECT_EQ(steps.size(), 3u);
  // A one-step chain slips in its only step.
  EXPECT_EQ(RandomSlip(ChainTerms{{4, 3}, {'+'}}, 2, rng).step, 0);
}

TEST(ReasoningTaskTest, GeneratedProblemsSolveToTheirAnswerAndFitTheSegments) {
  auto task = ArithmeticTask::Create(ReasoningTaskOptions());
  ASSERT_TRUE(task.ok());
  const std::vector<ArithmeticProblem> set = task->MakeSet(Split::kHeldOut, 300, 1);
  ASSERT_EQ(set.size(), 300u);
  auto reward = MakeRewardFn(RewardOptions{});
  ASSERT_TRUE(reward.ok()) << reward.status().ToString();
  size_t shortest = 1000, longest = 0;
  for (const ArithmeticProblem& p : set) {
    auto c = ParseChainPrompt(p.prompt);
    ASSERT_TRUE(c.ok()) << p.prompt;
    EXPECT_GE(c->terms.size(), 7u);
    EXPECT_LE(c->terms.size(), 9u);
    std::string answer;
    const std::string solution = ReasoningSolution(*c, -1, 0, &answer);
    EXPECT_EQ(answer, p.answer) << p.prompt;
    // The verifier accepts the right chain and refuses a slipped one.
    EXPECT_EQ((*reward)->Score(solution, p.answer).reward, 1.0f) << solution;
    std::mt19937_64 rng(3);
    const Slip s = RandomSlip(*c, 3, rng);
    std::string wrong;
    const std::string slipped = ReasoningSolution(*c, s.step, s.delta, &wrong);
    EXPECT_NE(wrong, p.answer);
    EXPECT_EQ((*reward)->Score(slipped, p.answer).reward, -1.0f) << slipped;
    // Characters are tokens here (docs/builtin-task.md), "\boxed{" one of them.
    shortest = std::min(shortest, solution.size() - 6);
    longest = std::max(longest, solution.size() - 6);
  }
  // 4 to 7 segments of 16 tokens (with EOS).
  EXPECT_GE(shortest + 1, 3 * 16u + 1);
  EXPECT_LE(longest + 1, 7 * 16u);
}

}  // namespace
}  // namespace treepo::scheduler

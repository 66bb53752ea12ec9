#include "scheduler/task/reasoning_task.h"

#include <gtest/gtest.h>

#include <set>

#include "scheduler/reward/reward_fn.h"

namespace treepo::scheduler {
namespace {

TEST(ReasoningTaskTest, WritesAndParsesPrompts) {
  EXPECT_EQ(RepeatPrompt({95, 9, '-', 12}), "Q: 95-9 until below 12=?\nA:");
  EXPECT_EQ(RepeatPrompt({9, 8, '+', 90}), "Q: 9+8 until above 90=?\nA:");
  auto p = ParseRepeatPrompt("Q: 95-9 until below 12=?\nA:");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->start, 95);
  EXPECT_EQ(p->operand, 9);
  EXPECT_EQ(p->op, '-');
  EXPECT_EQ(p->bound, 12);
  for (const char* bad :
       {"", "Q: 95-9=?\nA:", "Q: 95*9 until below 10=?\nA:", "Q: 95-9 until above 90=?\nA:",
        "Q: 95-12 until below 10=?\nA:", "Q: 95-0 until below 10=?\nA:",
        "Q: -9 until below 10=?\nA:", "Q: 95-9 until below 10=?\nA: x"}) {
    auto r = ParseRepeatPrompt(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_NE(r.status().message().find("not a repeat prompt"), std::string::npos);
  }
}

TEST(ReasoningTaskTest, SolvesStepByStepUntilTheBound) {
  std::string answer;
  EXPECT_EQ(RepeatSolution({40, 9, '-', 10}, -1, 0, &answer),
            " 40-9=31>10. 31-9=22>10. 22-9=13>10. 13-9=4<10. \\boxed{4}");
  EXPECT_EQ(answer, "4");
  EXPECT_EQ(RepeatSolution({70, 7, '+', 90}, -1, 0, &answer),
            " 70+7=77<90. 77+7=84<90. 84+7=91>90. \\boxed{91}");
  EXPECT_EQ(answer, "91");
  EXPECT_EQ(RepeatSteps({40, 9, '-', 10}), 4);
  EXPECT_EQ(RepeatSteps({70, 7, '+', 90}), 3);
}

TEST(ReasoningTaskTest, ASlipCarriesThroughToAWrongAnswer) {
  std::string answer;
  // Step 1 (31-9 = 22) slips to 24; the chain goes on from there.
  EXPECT_EQ(RepeatSolution({40, 9, '-', 10}, 1, 2, &answer),
            " 40-9=31>10. 31-9=24>10. 24-9=15>10. 15-9=6<10. \\boxed{6}");
  EXPECT_EQ(answer, "6");
  // A slip can change the number of steps: 22 -> 19 crosses 10 one step earlier... or later.
  EXPECT_EQ(RepeatSolution({40, 9, '-', 10}, 2, -3, &answer),
            " 40-9=31>10. 31-9=22>10. 22-9=10=10. 10-9=1<10. \\boxed{1}");
  EXPECT_EQ(RepeatSolution({40, 9, '-', 10}, 2, 3, &answer),
            " 40-9=31>10. 31-9=22>10. 22-9=16>10. 16-9=7<10. \\boxed{7}");
  // Never below 0: a downward slip that would be is taken upwards.
  EXPECT_EQ(RepeatSolution({11, 9, '-', 10}, 0, -3, &answer), " 11-9=5<10. \\boxed{5}");
}

TEST(ReasoningTaskTest, RandomSlipsAreAfterTheFirstStep) {
  std::mt19937_64 rng(7);
  const RepeatProblem p{40, 9, '-', 10};  // 4 steps
  std::set<int> steps;
  std::set<int64_t> deltas;
  for (int i = 0; i < 500; ++i) {
    const Slip s = RandomSlip(p, 3, 1, rng);
    steps.insert(s.step);
    deltas.insert(s.delta);
    std::string answer;
    RepeatSolution(p, s.step, s.delta, &answer);
    EXPECT_NE(answer, "4") << s.step << " " << s.delta;
  }
  EXPECT_EQ(steps, (std::set<int>{1, 2, 3}));
  EXPECT_EQ(deltas, (std::set<int64_t>{-3, -2, -1, 1, 2, 3}));
  // From a later step on; the last step when the chain is shorter.
  steps.clear();
  for (int i = 0; i < 200; ++i) steps.insert(RandomSlip(p, 3, 2, rng).step);
  EXPECT_EQ(steps, (std::set<int>{2, 3}));
  steps.clear();
  for (int i = 0; i < 50; ++i) steps.insert(RandomSlip(p, 3, 9, rng).step);
  EXPECT_EQ(steps, (std::set<int>{3}));
}

TEST(ReasoningTaskTest, GeneratedProblemsHaveTheirStepsSplitsAndVerifiableAnswers) {
  auto task = ArithmeticTask::Create(ReasoningTaskOptions());
  ASSERT_TRUE(task.ok());
  const std::vector<ArithmeticProblem> held = task->MakeSet(Split::kHeldOut, 300, 1);
  ASSERT_EQ(held.size(), 300u);
  const std::vector<ArithmeticProblem> train = task->MakeSet(Split::kTrain, 300, 1);
  auto reward = MakeRewardFn(RewardOptions{});
  ASSERT_TRUE(reward.ok()) << reward.status().ToString();
  std::set<std::string> train_prompts;
  for (const ArithmeticProblem& p : train) train_prompts.insert(p.prompt);
  size_t shortest = 1000, longest = 0;
  std::mt19937_64 rng(3);
  for (const ArithmeticProblem& p : held) {
    EXPECT_EQ(train_prompts.count(p.prompt), 0u) << p.prompt;
    auto rp = ParseRepeatPrompt(p.prompt);
    ASSERT_TRUE(rp.ok()) << p.prompt;
    EXPECT_GE(RepeatSteps(*rp), 6) << p.prompt;
    EXPECT_LE(RepeatSteps(*rp), 9) << p.prompt;
    // The answer is the first value past the bound, reached in whole steps of the operand.
    const int64_t a = std::stoll(p.answer);
    if (rp->op == '-') {
      EXPECT_LT(a, rp->bound);
      EXPECT_GE(a + rp->operand, rp->bound);
    } else {
      EXPECT_GT(a, rp->bound);
      EXPECT_LE(a - rp->operand, rp->bound);
    }
    EXPECT_EQ((a - rp->start) % rp->operand, 0);
    // The verifier accepts the worked solution and refuses a slipped one (unless the slip is a
    // whole operand, which one step more or less cancels: a lucky chain).
    EXPECT_EQ((*reward)->Score(p.solution, p.answer).reward, 1.0f) << p.solution;
    const Slip s = RandomSlip(*rp, 3, 1, rng);
    std::string wrong;
    const std::string slipped = RepeatSolution(*rp, s.step, s.delta, &wrong);
    const bool lucky = std::abs(s.delta) % rp->operand == 0;
    EXPECT_EQ((*reward)->Score(slipped, p.answer).reward, lucky && wrong == p.answer ? 1.0f : -1.0f)
        << slipped;
    if (!lucky) EXPECT_NE(wrong, p.answer) << slipped;
    // Characters are tokens here (docs/builtin-task.md), "\boxed{" one of them.
    shortest = std::min(shortest, p.solution.size() - 6);
    longest = std::max(longest, p.solution.size() - 6);
  }
  // 4 to 8 segments of 16 tokens (with EOS).
  EXPECT_GT(shortest + 1, 3 * 16u);
  EXPECT_LE(longest + 1, 8 * 16u);
}

TEST(ReasoningTaskTest, OptionsAreValidated) {
  ArithmeticOptions o = ReasoningTaskOptions();
  o.min_steps = 0;
  EXPECT_FALSE(ArithmeticTask::Create(o).ok());
  o = ReasoningTaskOptions();
  o.max_steps = 31;
  EXPECT_FALSE(ArithmeticTask::Create(o).ok());
  o = ReasoningTaskOptions();
  o.task = "reasonning";
  auto r = ArithmeticTask::Create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("reasonning"), std::string::npos);
}

}  // namespace
}  // namespace treepo::scheduler

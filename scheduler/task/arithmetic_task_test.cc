#include "scheduler/task/arithmetic_task.h"

#include <gtest/gtest.h>

#include <set>

namespace treepo::scheduler {
namespace {

TEST(ArithmeticTaskTest, SolvesSumWithSteps) {
  const ArithmeticProblem p = ArithmeticTask::Solve({47, 385, 19}, {'+', '+'});
  EXPECT_EQ(p.prompt, "Q: 47+385+19=?\nA:");
  EXPECT_EQ(p.solution, " 47+385=432. 432+19=451. \\boxed{451}");
  EXPECT_EQ(p.answer, "451");
}

TEST(ArithmeticTaskTest, SolvesDifferenceAndProduct) {
  EXPECT_EQ(ArithmeticTask::Solve({500, 123}, {'-'}).solution, " 500-123=377. \\boxed{377}");
  const ArithmeticProblem m = ArithmeticTask::Solve({306, 7}, {'*'});
  EXPECT_EQ(m.prompt, "Q: 306*7=?\nA:");
  EXPECT_EQ(m.solution, " 300*7=2100. 6*7=42. 2100+42=2142. \\boxed{2142}");
  EXPECT_EQ(m.answer, "2142");
  EXPECT_EQ(ArithmeticTask::Solve({40, 3}, {'*'}).solution, " 40*3=120. \\boxed{120}");
}

TEST(ArithmeticTaskTest, RejectsBadOptions) {
  ArithmeticOptions o;
  o.min_terms = 1;
  EXPECT_FALSE(ArithmeticTask::Create(o).ok());
  o = {};
  o.max_digits = 10;
  EXPECT_FALSE(ArithmeticTask::Create(o).ok());
  o = {};
  o.held_out_percent = 101;
  EXPECT_FALSE(ArithmeticTask::Create(o).ok());
  o = {};
  o.subtract_prob = 1.5;
  EXPECT_FALSE(ArithmeticTask::Create(o).ok());
}

// Checks a generated problem against its own arithmetic.
int64_t Evaluate(const std::string& prompt) {
  const std::string expr = prompt.substr(3, prompt.find('=') - 3);
  int64_t value = 0, term = 0;
  char op = '+';
  bool product = false;
  int64_t left = 0;
  for (size_t i = 0; i <= expr.size(); ++i) {
    if (i < expr.size() && isdigit(static_cast<unsigned char>(expr[i]))) {
      term = term * 10 + (expr[i] - '0');
      continue;
    }
    if (product) return left * term;
    if (i < expr.size() && expr[i] == '*') {
      product = true;
      left = term;
      term = 0;
      continue;
    }
    value = op == '+' ? value + term : value - term;
    if (i < expr.size()) op = expr[i];
    term = 0;
  }
  return value;
}

TEST(ArithmeticTaskTest, GeneratedProblemsAreCorrectAndWithinOptions) {
  ArithmeticOptions o;
  o.min_terms = 2;
  o.max_terms = 4;
  o.subtract_prob = 0.5;
  o.multiply_prob = 0.2;
  auto task = ArithmeticTask::Create(o);
  ASSERT_TRUE(task.ok());
  std::mt19937_64 rng(7);
  int products = 0;
  for (int i = 0; i < 2000; ++i) {
    const ArithmeticProblem p = task->Generate(rng);
    ASSERT_EQ(std::to_string(Evaluate(p.prompt)), p.answer) << p.prompt;
    ASSERT_GE(std::stoll(p.answer), 0) << p.prompt;
    ASSERT_TRUE(p.solution.ends_with(" \\boxed{" + p.answer + "}")) << p.solution;
    if (p.prompt.find('*') != std::string::npos) ++products;
  }
  EXPECT_GT(products, 300);
  EXPECT_LT(products, 500);
}

TEST(ArithmeticTaskTest, SplitsNeverOverlapAndAreDeterministic) {
  ArithmeticOptions o;
  o.held_out_percent = 20;
  auto task = ArithmeticTask::Create(o);
  ASSERT_TRUE(task.ok());
  const auto train = task->MakeSet(Split::kTrain, 3000, 1);
  const auto held = task->MakeSet(Split::kHeldOut, 500, 2);
  ASSERT_EQ(train.size(), 3000u);
  ASSERT_EQ(held.size(), 500u);
  std::set<std::string> train_prompts;
  for (const auto& p : train) {
    EXPECT_EQ(SplitOf(p.prompt, 20), Split::kTrain);
    train_prompts.insert(p.prompt);
  }
  EXPECT_EQ(train_prompts.size(), train.size());  // distinct
  for (const auto& p : held) EXPECT_EQ(train_prompts.count(p.prompt), 0u) << p.prompt;
  const auto again = task->MakeSet(Split::kHeldOut, 500, 2);
  for (size_t i = 0; i < held.size(); ++i) EXPECT_EQ(held[i].prompt, again[i].prompt);
  std::mt19937_64 rng(3);
  EXPECT_EQ(SplitOf(task->Sample(Split::kHeldOut, rng).prompt, 20), Split::kHeldOut);
}

TEST(ArithmeticTaskTest, SmallSpaceGivesFewerProblems) {
  ArithmeticOptions o;
  o.min_digits = o.max_digits = 1;
  o.min_terms = o.max_terms = 2;
  o.subtract_prob = 0.0;
  o.held_out_percent = 0;
  auto task = ArithmeticTask::Create(o);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->MakeSet(Split::kTrain, 1000, 5).size(), 81u);  // 9 x 9 sums
}

}  // namespace
}  // namespace treepo::scheduler

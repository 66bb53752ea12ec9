#include "scheduler/reward/reward_fn.h"

#include <gtest/gtest.h>

namespace treepo::scheduler {
namespace {

std::unique_ptr<RewardFn> Math() { return std::move(MakeRewardFn(RewardOptions{})).value(); }

TEST(MathRewardTest, TrickyAnswers) {
  auto fn = Math();
  auto score = [&](std::string_view response, std::string_view ref) {
    return fn->Score(response, ref).reward;
  };
  EXPECT_EQ(score("so \\boxed{0.5}", "\\frac{1}{2}"), 1.0f);
  EXPECT_EQ(score("\\boxed{1/2}", "\\dfrac{1}{2}"), 1.0f);
  EXPECT_EQ(score("\\boxed{\\tfrac12}", "0.5"), 1.0f);
  EXPECT_EQ(score("\\boxed{27}", "27.0"), 1.0f);
  EXPECT_EQ(score("\\boxed{1,000}", "1000"), 1.0f);
  EXPECT_EQ(score("\\boxed{1{,}000}", "1000"), 1.0f);
  EXPECT_EQ(score("\\boxed{90^\\circ}", "90"), 1.0f);
  EXPECT_EQ(score("\\boxed{90^{\\circ}}", "90"), 1.0f);
  EXPECT_EQ(score("\\boxed{\\text{(B)}}", "(B)"), 1.0f);
  EXPECT_EQ(score("\\boxed{\\left( 1, 2 \\right)}", "(1,2)"), 1.0f);
  EXPECT_EQ(score("\\boxed{3\\!}.", "3"), 1.0f);
  EXPECT_EQ(score("\\boxed{5.}", "5"), 1.0f);
  EXPECT_EQ(score("\\boxed{$-\\frac{3}{4}$}", "-0.75"), 1.0f);
  EXPECT_EQ(score("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\dfrac{\\sqrt{3}}{2}"), 1.0f);
  EXPECT_EQ(score("first \\boxed{2} then \\boxed{3}", "3"), 1.0f);  // the last box
  EXPECT_EQ(score("first \\boxed{2} then \\boxed{3}", "2"), -1.0f);
  EXPECT_EQ(score("the answer is 3", "3"), -1.0f);  // no box
  EXPECT_EQ(score("\\boxed{1,00}", "100"), -1.0f);  // not a thousands separator
  EXPECT_EQ(score("\\boxed{(1,2)}", "(2,1)"), -1.0f);
  EXPECT_EQ(score("\\boxed{}", ""), -1.0f);
  EXPECT_EQ(score("\\boxed{0.333}", "\\frac{1}{3}"), -1.0f);
  EXPECT_EQ(fn->Score("x \\boxed{\\frac{1}{2}}", "0.5").extracted, "\\frac{1}{2}");
  EXPECT_EQ(fn->Score("no box", "0.5").extracted, "");
}

TEST(MathRewardTest, ParseMathNumber) {
  EXPECT_EQ(ParseMathNumber("\\frac{1}{4}"), 0.25);
  EXPECT_EQ(ParseMathNumber("-\\frac{1}{4}"), -0.25);
  EXPECT_EQ(ParseMathNumber("3/4"), 0.75);
  EXPECT_EQ(ParseMathNumber("12,345,678"), 12345678.0);
  EXPECT_FALSE(ParseMathNumber("\\frac{1}{0}").has_value());
  EXPECT_FALSE(ParseMathNumber("x").has_value());
  EXPECT_FALSE(ParseMathNumber("1.2.3").has_value());
  EXPECT_FALSE(ParseMathNumber("").has_value());
}

TEST(RewardFactoryTest, ExactMatchOverlongAndUnknownNames) {
  RewardOptions o;
  o.name = "exact_match";
  auto em = MakeRewardFn(o);
  ASSERT_TRUE(em.ok());
  EXPECT_EQ((*em)->Score(" yes\n", "yes").reward, 1.0f);
  EXPECT_EQ((*em)->Score("yes.", "yes").reward, -1.0f);

  o.name = "math";
  o.overlong_max_tokens = 100;
  o.overlong_buffer_tokens = 20;
  auto ol = MakeRewardFn(o);
  ASSERT_TRUE(ol.ok());
  EXPECT_FLOAT_EQ((*ol)->Score("\\boxed{1}", "1", 80).reward, 1.0f);   // n = Lmax - B
  EXPECT_FLOAT_EQ((*ol)->Score("\\boxed{1}", "1", 90).reward, 0.5f);   // -10/20
  EXPECT_FLOAT_EQ((*ol)->Score("\\boxed{1}", "1", 100).reward, 0.0f);  // -1 at the cap
  EXPECT_FLOAT_EQ((*ol)->Score("\\boxed{1}", "2", 100).reward, -2.0f);
  EXPECT_FLOAT_EQ((*ol)->Score("\\boxed{1}", "1").reward, 1.0f);  // length unknown
  o.overlong_buffer_tokens = 0;
  EXPECT_EQ(MakeRewardFn(o).status().code(), StatusCode::kInvalidArgument);

  o.name = "nope";
  auto bad = MakeRewardFn(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("math, exact_match"), std::string::npos);
}

}  // namespace
}  // namespace treepo::scheduler

#include "scheduler/tree/stop_rules.h"

#include <gtest/gtest.h>

#include <string>

namespace treepo::scheduler {
namespace {

SegmentView View(std::string_view text, bool eos, int tokens = 4, int depth = 1) {
  SegmentView v;
  v.text = text;
  v.has_eos = eos;
  v.response_tokens = tokens;
  v.depth = depth;
  v.max_depth = 3;
  v.max_response_tokens = 12;
  return v;
}

TEST(StopRulesTest, RepetitionWindowEdges) {
  EXPECT_FALSE(HasRepetition(std::string(31, 'a'), 32, 8));  // under 32 chars never fires
  EXPECT_FALSE(HasRepetition(std::string(38, 'a'), 32, 8));  // 7 overlapping occurrences
  EXPECT_TRUE(HasRepetition(std::string(39, 'a'), 32, 8));   // 8 overlapping occurrences
  std::string period;  // a 4-char period: windows repeat every 4 chars
  for (int i = 0; i < 16; ++i) period += "abcd";
  EXPECT_TRUE(HasRepetition(period, 32, 8));  // 64 chars: each window at offsets 0,4,..,28,32
  EXPECT_FALSE(HasRepetition(period.substr(0, 59), 32, 8));  // offsets 0..27: 7 each
  EXPECT_FALSE(HasRepetition("", 32, 8));
}

TEST(StopRulesTest, BoxedAllowsNestedBraces) {
  EXPECT_EQ(LastBoxedContent("so \\boxed{\\frac{1}{2}}."), "\\frac{1}{2}");
  EXPECT_EQ(LastBoxedContent("\\boxed{1} then \\boxed{ {a}{b} }"), " {a}{b} ");
  EXPECT_EQ(LastBoxedContent("\\boxed {3}"), "3");
  EXPECT_FALSE(LastBoxedContent("\\boxed{\\frac{1}{2}").has_value());  // unbalanced
  EXPECT_FALSE(LastBoxedContent("boxed{3}").has_value());
  EXPECT_EQ(LastBoxedContent("\\boxed{2} and \\boxed{x"), "2");
  EXPECT_TRUE(HasBoxed("\\boxed{}"));
}

TEST(StopRulesTest, DefaultOrder) {
  const StopRuleSet rules = MakeDefaultStopRules(StopOptions{});
  const std::string rep(40, 'a');
  const std::string rep_boxed = rep + "\\boxed{1}";
  EXPECT_EQ(rules.Check(View("\\boxed{1}", true)), FinishReason::kFinished);
  EXPECT_EQ(rules.Check(View("\\boxed{1}", false)), std::nullopt);  // box without EOS goes on
  EXPECT_EQ(rules.Check(View("x", true)), FinishReason::kEos);
  EXPECT_EQ(rules.Check(View("", true, 0)), FinishReason::kEos);  // EOS at position 0
  EXPECT_EQ(rules.Check(View("x", true, 12, 3)), FinishReason::kEos);
  EXPECT_EQ(rules.Check(View("x", false, 12, 3)), FinishReason::kMaxTokens);
  EXPECT_EQ(rules.Check(View("x", false, 11, 3)), FinishReason::kMaxDepth);
  EXPECT_EQ(rules.Check(View(rep, false, 12)), FinishReason::kMaxTokens);  // repetition last
  EXPECT_EQ(rules.Check(View(rep, false)), FinishReason::kRepetition);
  EXPECT_EQ(rules.Check(View(rep_boxed, true)), FinishReason::kFinished);

  StopOptions first;
  first.repetition_first = true;
  const StopRuleSet rf = MakeDefaultStopRules(first);
  EXPECT_EQ(rf.Check(View(rep_boxed, true)), FinishReason::kRepetition);
  EXPECT_EQ(rf.Check(View(rep, false, 12)), FinishReason::kRepetition);

  StopOptions boxed_only;
  boxed_only.boxed_only = true;
  EXPECT_EQ(MakeDefaultStopRules(boxed_only).Check(View("\\boxed{1}", false)),
            FinishReason::kFinished);
}

}  // namespace
}  // namespace treepo::scheduler

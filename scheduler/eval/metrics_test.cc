#include "scheduler/eval/metrics.h"

#include <gtest/gtest.h>

namespace treepo::scheduler {
namespace {

TEST(MetricsTest, Accuracy) {
  EXPECT_DOUBLE_EQ(Accuracy({true, false, true, true}), 0.75);
  EXPECT_DOUBLE_EQ(Accuracy({}), 0.0);
}

TEST(MetricsTest, PassAtKHandValues) {
  EXPECT_NEAR(*PassAtK(10, 3, 1), 0.3, 1e-12);
  // 1 - C(7,5)/C(10,5) = 1 - 21/252.
  EXPECT_NEAR(*PassAtK(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-12);
  EXPECT_DOUBLE_EQ(*PassAtK(10, 6, 5), 1.0);  // n - c < k
  EXPECT_DOUBLE_EQ(*PassAtK(10, 0, 5), 0.0);
  EXPECT_DOUBLE_EQ(*PassAtK(4, 4, 4), 1.0);
  // Large n stays finite where binomials would overflow: 1 - C(900,100)/C(1000,100).
  const double v = *PassAtK(1000, 100, 100);
  EXPECT_GT(v, 0.9999);
  EXPECT_LE(v, 1.0);
  EXPECT_FALSE(PassAtK(0, 0, 1).ok());
  EXPECT_FALSE(PassAtK(5, 6, 1).ok());
  EXPECT_FALSE(PassAtK(5, 1, 6).ok());
  EXPECT_FALSE(PassAtK(5, 1, 0).ok());
}

TEST(MetricsTest, MajorityVoteTiesGoToFirstAppearance) {
  EXPECT_EQ(MajorityVoteIndex({{"3", false}, {"5", true}, {"5", true}, {"3", false}}), 0);
  EXPECT_EQ(MajorityVoteIndex({{"", false}, {"5", true}, {"3", false}, {"3", false}}), 2);
  EXPECT_EQ(MajorityVoteIndex({{"", false}, {"", false}}), -1);
  EXPECT_EQ(MajorityVoteIndex({}), -1);
}

TEST(MetricsTest, MajAtKHandValues) {
  // All samples agree and are right: 1. All wrong: 0. No answers at all: 0.
  EXPECT_DOUBLE_EQ(*MajAtK({{"7", true}, {"7", true}}, 4), 1.0);
  EXPECT_DOUBLE_EQ(*MajAtK({{"7", false}, {"8", false}}, 4), 0.0);
  EXPECT_DOUBLE_EQ(*MajAtK({{"", false}}, 3), 0.0);
  // k = 1 is the accuracy up to bootstrap noise: 3 of 4 right.
  const std::vector<SampleOutcome> s = {{"1", true}, {"1", true}, {"1", true}, {"2", false}};
  EXPECT_NEAR(*MajAtK(s, 1, 1000, 3), 0.75, 0.05);
  // Maj@k with a 3:1 majority for the right answer rises with k.
  EXPECT_GT(*MajAtK(s, 9, 1000, 3), 0.9);
  // Seeded: the same value twice.
  EXPECT_DOUBLE_EQ(*MajAtK(s, 4, 1000, 9), *MajAtK(s, 4, 1000, 9));
  // k = 2 with answers {right, wrong} half/half: a draw wins if both are right, or they differ
  // and the first drawn is right: 1/4 + 1/4 = 1/2.
  EXPECT_NEAR(*MajAtK({{"1", true}, {"2", false}}, 2, 20000, 1), 0.5, 0.02);
  EXPECT_FALSE(MajAtK({}, 1).ok());
  EXPECT_FALSE(MajAtK(s, 0).ok());
}

TEST(MetricsTest, OverallWeightsBySize) {
  const double v = *Overall({{"a", 0.5, 30}, {"b", 0.25, 10}});
  EXPECT_DOUBLE_EQ(v, (0.5 * 30 + 0.25 * 10) / 40);
  EXPECT_FALSE(Overall({}).ok());
  EXPECT_FALSE(Overall({{"a", 0.5, 0}}).ok());
  EXPECT_FALSE(Overall({{"a", 0.5, -1}}).ok());
}

}  // namespace
}  // namespace treepo::scheduler

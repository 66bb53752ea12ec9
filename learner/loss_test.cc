#include "learner/loss.h"

#include <gtest/gtest.h>

#include <cmath>

namespace treepo::learner {
namespace {

struct Case {
  double ratio;
  float adv;
  double want_loss;  // per token
  double want_dlogp;
};

PolicyLossOutput RunOne(const PolicyLossOptions& o, double ratio, float adv, float logp_ref = 0,
                        float entropy = 0) {
  const float old_lp = -1.0f;
  const float new_lp = static_cast<float>(old_lp + std::log(ratio));
  const float lp[] = {new_lp}, olp[] = {old_lp}, a[] = {adv}, ref[] = {logp_ref}, ent[] = {entropy};
  PolicyLossInput in;
  in.logp_new = lp;
  in.logp_old = olp;
  in.advantages = a;
  if (o.kl_coef > 0) in.logp_ref = ref;
  if (o.entropy_coef > 0) in.entropy = ent;
  in.denominator = 1.0;
  auto out = PolicyLoss(o, in);
  EXPECT_TRUE(out.ok()) << out.status().message();
  return *out;
}

TEST(PolicyLossTest, HandValuesInsideAndOutsideClip) {
  const PolicyLossOptions o;
  const Case cases[] = {
      {1.1, 2.0f, -2.2, -2.2},   // A > 0 inside: -A r, grad -A r
      {1.5, 2.0f, -2.56, 0.0},   // A > 0 above 1.28: clipped
      {0.5, 2.0f, -1.0, -1.0},   // A > 0 below 0.8: unclipped (min picks r)
      {1.1, -2.0f, 2.2, 2.2},    // A < 0 inside
      {0.5, -2.0f, 1.6, 0.0},    // A < 0 below 0.8: clipped at 0.8
      {1.5, -2.0f, 3.0, 3.0},    // A < 0 above 1.28: unclipped (max picks r)
      {12.0, -2.0f, 20.0, 0.0},  // A < 0 beyond dual clip c = 10
      {1.3, 0.0f, 0.0, 0.0},     // A = 0
  };
  for (const Case& c : cases) {
    const PolicyLossOutput out = RunOne(o, c.ratio, c.adv);
    EXPECT_NEAR(out.loss, c.want_loss, 1e-5) << c.ratio << " " << c.adv;
    EXPECT_NEAR(out.dlogp[0], c.want_dlogp, 1e-5) << c.ratio << " " << c.adv;
  }
}

TEST(PolicyLossTest, GradientMatchesFiniteDifference) {
  PolicyLossOptions o;
  o.kl_coef = 0.3f;
  const double h = 1e-4;
  for (double ratio : {0.5, 0.9, 1.1, 1.5, 5.0, 12.0}) {
    for (float adv : {1.5f, -1.5f}) {
      const PolicyLossOutput out = RunOne(o, ratio, adv, -0.7f);
      const double up = RunOne(o, ratio * std::exp(h), adv, -0.7f).loss;
      const double down = RunOne(o, ratio * std::exp(-h), adv, -0.7f).loss;
      EXPECT_NEAR(out.dlogp[0], (up - down) / (2 * h), 2e-3) << ratio << " " << adv;
    }
  }
}

TEST(PolicyLossTest, KlAndEntropyTerms) {
  PolicyLossOptions o;
  o.kl_coef = 0.5f;
  o.entropy_coef = 0.01f;
  // ratio 1, A = 0: only the extra terms. logp_new = -1, logp_ref = -1.5: d = -0.5.
  const PolicyLossOutput out = RunOne(o, 1.0, 0.0f, -1.5f, 2.0f);
  const double d = -0.5, k3 = std::exp(d) - d - 1;
  EXPECT_NEAR(out.loss, 0.5 * k3 - 0.01 * 2.0, 1e-6);
  EXPECT_NEAR(out.dlogp[0], 0.5 * (1 - std::exp(d)), 1e-6);
  ASSERT_EQ(out.dentropy.size(), 1u);
  EXPECT_NEAR(out.dentropy[0], -0.01, 1e-7);
  EXPECT_NEAR(out.stats.kl_mean, k3, 1e-6);
  EXPECT_NEAR(out.stats.entropy_mean, 2.0, 1e-6);
}

TEST(PolicyLossTest, TokenMeanAndStatistics) {
  const PolicyLossOptions o;
  const float lp[] = {std::log(1.5f), std::log(0.5f), std::log(12.0f), 0.0f};
  const float olp[] = {0, 0, 0, 0};
  const float a[] = {1.0f, -1.0f, -1.0f, 1.0f};
  PolicyLossInput in;
  in.logp_new = lp;
  in.logp_old = olp;
  in.advantages = a;
  in.denominator = 8.0;  // e.g. a mini-batch of 8 tokens, this micro-batch holds 4
  auto out = PolicyLoss(o, in);
  ASSERT_TRUE(out.ok());
  EXPECT_NEAR(out->loss, (-1.28 + 0.8 + 10.0 - 1.0) / 8.0, 1e-5);
  EXPECT_NEAR(out->dlogp[3], -1.0 / 8.0, 1e-6);
  EXPECT_DOUBLE_EQ(out->stats.clip_high_fraction, 0.25);
  EXPECT_DOUBLE_EQ(out->stats.clip_low_fraction, 0.25);
  EXPECT_DOUBLE_EQ(out->stats.dual_clip_fraction, 0.25);
  EXPECT_DOUBLE_EQ(out->stats.clip_fraction, 0.75);
  EXPECT_NEAR(out->stats.ratio_max, 12.0, 1e-4);
  EXPECT_NEAR(out->stats.ratio_min, 0.5, 1e-6);
  EXPECT_NEAR(out->stats.ratio_mean, (1.5 + 0.5 + 12.0 + 1.0) / 4, 1e-4);
}

TEST(PolicyLossTest, RejectsBadInput) {
  PolicyLossOptions o;
  const float x[] = {0.0f, 0.0f}, y[] = {0.0f};
  PolicyLossInput in;
  in.logp_new = x;
  in.logp_old = y;
  in.advantages = x;
  in.denominator = 1;
  EXPECT_EQ(PolicyLoss(o, in).status().code(), StatusCode::kInvalidArgument);
  in.logp_old = x;
  in.denominator = 0;
  EXPECT_EQ(PolicyLoss(o, in).status().code(), StatusCode::kInvalidArgument);
  in.denominator = 2;
  o.kl_coef = 0.1f;
  EXPECT_EQ(PolicyLoss(o, in).status().code(), StatusCode::kInvalidArgument);
  o.kl_coef = 0;
  o.dual_clip = 1.0f;
  EXPECT_EQ(PolicyLoss(o, in).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::learner

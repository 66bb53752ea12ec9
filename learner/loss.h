// The policy loss of TREEPO_SPEC.md section 6, per response token, with its gradient.
//
// Per token, r = exp(logp_new - logp_old), advantage A:
//   l = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high));  if A < 0: l = min(l, -A c)
// plus kl_coef * k3(ref || new) and minus entropy_coef * entropy. The loss is the sum over the
// given tokens divided by `denominator` (the mini-batch's valid-token count: pass the same
// denominator for every micro-batch of a mini-batch and the accumulated gradients equal one
// token mean over the mini-batch).
#pragma once

#include <span>
#include <vector>

#include "common/status.h"

namespace treepo::learner {

struct PolicyLossOptions {
  float eps_low = 0.2f;       // lower clip: r >= 1 - eps_low
  float eps_high = 0.28f;     // upper clip (clip-higher): r <= 1 + eps_high
  float dual_clip = 10.0f;    // c: the loss of a negative-advantage token is at most -A c
  float kl_coef = 0.0f;       // weight of the k3 KL estimate to the reference policy
  float entropy_coef = 0.0f;  // weight of the entropy bonus (subtracted from the loss)
  // eps in [0, 1) resp. >= 0, c > 1, coefficients >= 0 and finite.
  Status Validate() const;
};

// Inputs for n valid tokens. logp_ref is needed only when kl_coef > 0, entropy only when
// entropy_coef > 0 (else they may be empty).
struct PolicyLossInput {
  std::span<const float> logp_new;    // [n] log-prob of the token under the current policy
  std::span<const float> logp_old;    // [n] under the policy that sampled (recomputed)
  std::span<const float> advantages;  // [n]
  std::span<const float> logp_ref;    // [n] or empty
  std::span<const float> entropy;     // [n] or empty: entropy of the current distribution
  double denominator = 0.0;           // > 0; usually n or the mini-batch's token count
};

// Statistics over the given tokens (fractions of n).
struct PolicyLossStats {
  int tokens = 0;
  double clip_high_fraction = 0.0;  // A > 0 and r > 1 + eps_high (no gradient)
  double clip_low_fraction = 0.0;   // A < 0 and r < 1 - eps_low (no gradient)
  double dual_clip_fraction = 0.0;  // A < 0 and r > c (no gradient)
  double clip_fraction = 0.0;       // the sum of the three
  double ratio_mean = 0.0, ratio_min = 0.0, ratio_max = 0.0;
  double kl_mean = 0.0;       // mean k3 estimate (0 when kl_coef == 0)
  double entropy_mean = 0.0;  // mean entropy (0 when not given)
};

struct PolicyLossOutput {
  double loss = 0.0;            // sum of per-token losses / denominator
  std::vector<float> dlogp;     // [n] dloss / dlogp_new
  std::vector<float> dentropy;  // [n] dloss / dentropy; empty when entropy_coef == 0
  PolicyLossStats stats;
};

// Refuses mismatched lengths, a non-positive denominator and missing logp_ref / entropy when
// their coefficient is positive (kInvalidArgument).
Result<PolicyLossOutput> PolicyLoss(const PolicyLossOptions& options, const PolicyLossInput& in);

}  // namespace treepo::learner

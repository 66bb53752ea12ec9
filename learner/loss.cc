#include "learner/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace treepo::learner {

Status PolicyLossOptions::Validate() const {
  auto finite = [](float v) { return std::isfinite(v); };
  if (!finite(eps_low) || eps_low < 0.0f || eps_low >= 1.0f) {
    return InvalidArgument("eps_low must be in [0, 1)");
  }
  if (!finite(eps_high) || eps_high < 0.0f) return InvalidArgument("eps_high must be >= 0");
  if (!finite(dual_clip) || dual_clip <= 1.0f) return InvalidArgument("dual_clip must be > 1");
  if (!finite(kl_coef) || kl_coef < 0.0f) return InvalidArgument("kl_coef must be >= 0");
  if (!finite(entropy_coef) || entropy_coef < 0.0f) {
    return InvalidArgument("entropy_coef must be >= 0");
  }
  return OkStatus();
}

Result<PolicyLossOutput> PolicyLoss(const PolicyLossOptions& o, const PolicyLossInput& in) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  const size_t n = in.logp_new.size();
  if (in.logp_old.size() != n || in.advantages.size() != n) {
    return InvalidArgument("logp_new, logp_old and advantages must have equal lengths");
  }
  const bool use_kl = o.kl_coef > 0.0f, use_entropy = o.entropy_coef > 0.0f;
  if (use_kl && in.logp_ref.size() != n) return InvalidArgument("kl_coef > 0 needs logp_ref [n]");
  if (!in.entropy.empty() && in.entropy.size() != n) {
    return InvalidArgument("entropy must be empty or [n]");
  }
  if (use_entropy && in.entropy.empty()) return InvalidArgument("entropy_coef > 0 needs entropy");
  if (!(in.denominator > 0.0)) return InvalidArgument("denominator must be > 0");

  PolicyLossOutput out;
  out.dlogp.resize(n);
  if (use_entropy) out.dentropy.assign(n, static_cast<float>(-o.entropy_coef / in.denominator));
  PolicyLossStats& s = out.stats;
  s.tokens = static_cast<int>(n);
  s.ratio_min = n ? std::numeric_limits<double>::infinity() : 0.0;
  s.ratio_max = n ? -std::numeric_limits<double>::infinity() : 0.0;
  const double inv_den = 1.0 / in.denominator;
  const double lo = 1.0 - o.eps_low, hi = 1.0 + o.eps_high, c = o.dual_clip;
  int n_high = 0, n_low = 0, n_dual = 0;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double r = std::exp(static_cast<double>(in.logp_new[i]) - in.logp_old[i]);
    const double a = in.advantages[i];
    double l = 0.0, dl_dr = 0.0;
    if (a > 0.0) {
      // max(-A r, -A clip(r)) = -A min(r, 1 + eps_high) for A > 0.
      if (r > hi) {
        l = -a * hi;
        ++n_high;
      } else {
        l = -a * r;
        dl_dr = -a;
      }
    } else if (a < 0.0) {
      // = |A| max(r, 1 - eps_low), then at most |A| c.
      if (r < lo) {
        l = -a * lo;
        ++n_low;
      } else if (r > c) {
        l = -a * c;
        ++n_dual;
      } else {
        l = -a * r;
        dl_dr = -a;
      }
    }
    double g = dl_dr * r;  // dr / dlogp_new = r
    if (use_kl) {
      // k3 = exp(d) - d - 1 with d = logp_ref - logp_new.
      const double d = static_cast<double>(in.logp_ref[i]) - in.logp_new[i];
      const double k3 = std::exp(d) - d - 1.0;
      l += o.kl_coef * k3;
      g += o.kl_coef * (1.0 - std::exp(d));
      s.kl_mean += k3;
    }
    if (!in.entropy.empty()) {
      s.entropy_mean += in.entropy[i];
      if (use_entropy) l -= o.entropy_coef * in.entropy[i];
    }
    sum += l;
    out.dlogp[i] = static_cast<float>(g * inv_den);
    s.ratio_mean += r;
    s.ratio_min = std::min(s.ratio_min, r);
    s.ratio_max = std::max(s.ratio_max, r);
  }
  out.loss = sum * inv_den;
  if (n > 0) {
    const double inv_n = 1.0 / static_cast<double>(n);
    s.clip_high_fraction = n_high * inv_n;
    s.clip_low_fraction = n_low * inv_n;
    s.dual_clip_fraction = n_dual * inv_n;
    s.clip_fraction = (n_high + n_low + n_dual) * inv_n;
    s.ratio_mean *= inv_n;
    s.kl_mean *= inv_n;
    s.entropy_mean *= inv_n;
  }
  return out;
}

}  // namespace treepo::learner

#include "scheduler/tree/policies.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "common/check.h"

namespace treepo::scheduler {
namespace {

// floor(total / A) each, the remainder to the last path.
class FixedAvgPolicy : public BranchingPolicy {
 public:
  std::string_view name() const override { return "fixed_avg"; }
  std::vector<int> Split(int total, const std::vector<BranchPath>& paths) const override {
    const int a = static_cast<int>(paths.size());
    TREEPO_CHECK(a >= 1 && total >= a);
    std::vector<int> counts(a, total / a);
    counts.back() += total % a;
    return counts;
  }
};

enum class Score { kCumulative, kMean, kLastSegment };

// weights = softmax(sign * (score - min) / T); one child each, then the rest by largest
// remainder of weight * rest (ties to the earlier path).
class LogprobWeightedPolicy : public BranchingPolicy {
 public:
  LogprobWeightedPolicy(Score score, double temperature, double sign)
      : score_(score), temperature_(temperature), sign_(sign) {}
  std::string_view name() const override { return "logprob_weighted"; }
  std::vector<int> Split(int total, const std::vector<BranchPath>& paths) const override {
    const int a = static_cast<int>(paths.size());
    TREEPO_CHECK(a >= 1 && total >= a);
    std::vector<double> s(a);
    for (int i = 0; i < a; ++i) {
      const BranchPath& p = paths[i];
      switch (score_) {
        case Score::kCumulative:
          s[i] = p.cum_logprob;
          break;
        case Score::kMean:
          s[i] = p.response_tokens > 0 ? p.cum_logprob / p.response_tokens : 0.0;
          break;
        case Score::kLastSegment:
          s[i] = p.last_mean_logprob;
          break;
      }
    }
    const double lo = *std::min_element(s.begin(), s.end());
    std::vector<double> z(a);
    for (int i = 0; i < a; ++i) z[i] = sign_ * (s[i] - lo) / temperature_;
    const double zmax = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (double& v : z) sum += (v = std::exp(v - zmax));
    const int rest = total - a;
    std::vector<int> counts(a, 1);
    std::vector<double> frac(a);
    int given = 0;
    for (int i = 0; i < a; ++i) {
      const double share = z[i] / sum * rest;
      const int whole = static_cast<int>(std::floor(share));
      counts[i] += whole;
      given += whole;
      frac[i] = share - whole;
    }
    std::vector<int> order(a);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return frac[x] > frac[y]; });
    for (int k = 0; given < rest; ++k, ++given) ++counts[order[k % a]];
    return counts;
  }

 private:
  Score score_;
  double temperature_;
  double sign_;
};

// Candidates in random order; each is cut back to j whole windows (j uniform in
// {0..n-1}, n = ceil(len / window), capped so at most d-1 segments are kept) and gets
// min(b, remaining) copies; candidates are cycled (with fresh cuts) until remaining is spent.
class DepthFirstFallback : public FallbackPolicy {
 public:
  std::string_view name() const override { return "depth_first"; }
  std::vector<FallbackBranch> Plan(std::vector<FallbackCandidate> candidates,
                                   const FallbackParams& p, SplitMixRng& rng) const override {
    TREEPO_CHECK(p.remaining >= 1 && p.branch_factor >= 1 && p.segment_tokens >= 1);
    for (size_t i = candidates.size(); i > 1; --i) {
      std::swap(candidates[i - 1], candidates[rng.UniformInt(0, static_cast<int64_t>(i) - 1)]);
    }
    const int window = p.window_tokens > 0 ? p.window_tokens : p.segment_tokens;
    const int segs_per_window = std::max(1, window / p.segment_tokens);
    std::vector<FallbackBranch> out;
    int remaining = p.remaining;
    for (size_t k = 0; remaining > 0; ++k) {
      FallbackBranch br;
      br.copies = std::min(p.branch_factor, remaining);
      if (!candidates.empty()) {
        const FallbackCandidate& c = candidates[k % candidates.size()];
        const int n = std::max(1, (c.response_tokens + window - 1) / window);
        const int j = static_cast<int>(rng.UniformInt(0, n - 1));
        const int kept =
            std::min({j * segs_per_window, p.max_depth - 1, static_cast<int>(c.path.size()) - 1});
        if (kept > 0) br.parent = c.path[kept - 1];
      }
      remaining -= br.copies;
      out.push_back(br);
    }
    return out;
  }
};

}  // namespace

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t MixSeed(uint64_t a, uint64_t b) { return SplitMix64(SplitMix64(a) ^ b); }

uint64_t SplitMixRng::Next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int64_t SplitMixRng::UniformInt(int64_t lo, int64_t hi) {
  TREEPO_CHECK(lo <= hi);
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  if (span == 0) return static_cast<int64_t>(Next());
  // Rejection sampling keeps it unbiased.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % span;
  uint64_t x;
  do {
    x = Next();
  } while (x >= limit);
  return lo + static_cast<int64_t>(x % span);
}

namespace {

// A plug-in's branching policy: the C descriptor called through its function pointer.
class PluginBranchingPolicy : public BranchingPolicy {
 public:
  PluginBranchingPolicy(const TreepoBranchingPlugin& d, std::string name)
      : d_(d), name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  std::vector<int> Split(int total, const std::vector<BranchPath>& paths) const override {
    std::vector<TreepoBranchPath> in;
    in.reserve(paths.size());
    for (const BranchPath& p : paths) {
      in.push_back({p.tip.value(), p.cum_logprob, p.response_tokens, p.last_mean_logprob});
    }
    std::vector<int32_t> counts(paths.size(), 0);
    d_.split(d_.state, total, in.data(), in.size(), counts.data());
    int sum = 0;
    for (int32_t c : counts) {
      TREEPO_CHECK(c >= 1) << "branching plug-in '" << name_ << "' gave a path " << c
                           << " children";
      sum += c;
    }
    TREEPO_CHECK(sum == total) << "branching plug-in '" << name_ << "' split " << total
                               << " children into counts summing to " << sum;
    return {counts.begin(), counts.end()};
  }

 private:
  TreepoBranchingPlugin d_;  // d_.name is not used (it points into the caller's memory)
  std::string name_;
};

Result<std::unique_ptr<BranchingPolicy>> MakeLogprobWeighted(const BranchingOptions& o) {
  Score score;
  if (o.score == "cumulative") {
    score = Score::kCumulative;
  } else if (o.score == "mean") {
    score = Score::kMean;
  } else if (o.score == "last_segment") {
    score = Score::kLastSegment;
  } else {
    return InvalidArgument("unknown branching score \"" + o.score +
                           "\" (valid: cumulative, mean, last_segment)");
  }
  if (!(o.temperature > 0) || !std::isfinite(o.temperature)) {
    return InvalidArgument("branching temperature must be finite and > 0");
  }
  return std::unique_ptr<BranchingPolicy>(std::make_unique<LogprobWeightedPolicy>(
      score, o.temperature, o.favour_low_prob ? -1.0 : 1.0));
}

}  // namespace

BranchingPolicyRegistry& BranchingPolicies() {
  static BranchingPolicyRegistry* registry = [] {
    auto* r = new BranchingPolicyRegistry("branching policy");
    TREEPO_CHECK_OK(r->Register(
        "fixed_avg", [](const BranchingOptions&) -> Result<std::unique_ptr<BranchingPolicy>> {
          return std::unique_ptr<BranchingPolicy>(std::make_unique<FixedAvgPolicy>());
        }));
    TREEPO_CHECK_OK(r->Register("logprob_weighted", MakeLogprobWeighted));
    return r;
  }();
  return *registry;
}

Status RegisterBranchingPlugin(const TreepoBranchingPlugin& plugin) {
  if (plugin.split == nullptr) {
    return InvalidArgument(std::string("branching policy '") + plugin.name +
                           "': no split function");
  }
  const std::string name = plugin.name;
  return BranchingPolicies().Register(
      name, [plugin, name](const BranchingOptions&) -> Result<std::unique_ptr<BranchingPolicy>> {
        return std::unique_ptr<BranchingPolicy>(
            std::make_unique<PluginBranchingPolicy>(plugin, name));
      });
}

std::vector<std::string> BranchingPolicyNames() { return BranchingPolicies().Names(); }

Result<std::unique_ptr<BranchingPolicy>> MakeBranchingPolicy(const BranchingOptions& o) {
  return BranchingPolicies().Make(o.policy, o);
}

FallbackPolicyRegistry& FallbackPolicies() {
  static FallbackPolicyRegistry* registry = [] {
    auto* r = new FallbackPolicyRegistry("fallback policy");
    TREEPO_CHECK_OK(r->Register("depth_first", []() -> Result<std::unique_ptr<FallbackPolicy>> {
      return std::unique_ptr<FallbackPolicy>(std::make_unique<DepthFirstFallback>());
    }));
    return r;
  }();
  return *registry;
}

std::vector<std::string> FallbackPolicyNames() { return FallbackPolicies().Names(); }

Result<std::unique_ptr<FallbackPolicy>> MakeFallbackPolicy(std::string_view name) {
  return FallbackPolicies().Make(name);
}

}  // namespace treepo::scheduler

#include "learner/advantage/advantage.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "common/check.h"

namespace treepo::learner {
namespace {

double Mean(const QueryLeaves& q) {
  double s = 0.0;
  for (const LeafSample& l : q.leaves) s += l.reward;
  return q.leaves.empty() ? 0.0 : s / static_cast<double>(q.leaves.size());
}

// Reward sum and leaf count of the subtree under each node that some leaf passes through.
struct SubtreeStats {
  double sum = 0.0;
  int count = 0;
};

std::unordered_map<uint64_t, SubtreeStats> Subtrees(const QueryLeaves& q) {
  std::unordered_map<uint64_t, SubtreeStats> sub;
  for (const LeafSample& l : q.leaves) {
    // A node listed twice on one path would count the leaf twice; paths come from parent
    // links, so ids on a path are distinct.
    for (uint64_t id : l.path) {
      SubtreeStats& s = sub[id];
      s.sum += l.reward;
      s.count += 1;
    }
  }
  return sub;
}

// 1 / (unbiased std of the query's rewards + 1e-6); the std is 0 for a single leaf.
double InverseStd(const QueryLeaves& q, double mean) {
  const size_t n = q.leaves.size();
  double ss = 0.0;
  for (const LeafSample& l : q.leaves) ss += (l.reward - mean) * (l.reward - mean);
  const double std = n > 1 ? std::sqrt(ss / static_cast<double>(n - 1)) : 0.0;
  return 1.0 / (std + 1e-6);
}

// (R_i - mean) * scale for every leaf of the query.
std::vector<double> CenteredRewards(const QueryLeaves& q, double mean, double scale) {
  std::vector<double> out;
  out.reserve(q.leaves.size());
  for (const LeafSample& l : q.leaves) out.push_back((l.reward - mean) * scale);
  return out;
}

// treepo and treepo_size_weighted: terms R_i - mean_g over the query (depth 0) and every
// ancestor subtree with >= 2 leaves; combined by a plain or a size-weighted mean.
class TreepoEstimator : public AdvantageEstimator {
 public:
  explicit TreepoEstimator(bool size_weighted) : size_weighted_(size_weighted) {}
  std::string_view name() const override {
    return size_weighted_ ? "treepo_size_weighted" : "treepo";
  }
  bool whiten() const override { return true; }

  std::vector<double> Compute(const QueryLeaves& q) const override {
    const int n = static_cast<int>(q.leaves.size());
    const std::unordered_map<uint64_t, SubtreeStats> sub = Subtrees(q);
    const double root_mean = Mean(q);
    std::vector<double> out(n);
    for (int i = 0; i < n; ++i) {
      const LeafSample& l = q.leaves[i];
      const double root_weight = size_weighted_ ? static_cast<double>(n) : 1.0;
      double num = root_weight * (l.reward - root_mean);
      double den = root_weight;
      for (uint64_t id : l.path) {
        const SubtreeStats& s = sub.at(id);
        if (s.count < 2) continue;
        const double term = l.reward - s.sum / s.count;
        const double weight = size_weighted_ ? static_cast<double>(s.count) : 1.0;
        num += weight * term;
        den += weight;
      }
      out[i] = num / den;
    }
    return out;
  }

 private:
  bool size_weighted_;
};

// grpo, dr_grpo, reinforce_pp_baseline: R_i - mean over the query, optionally divided by the
// unbiased std + 1e-6 (std 0 for a single leaf). reinforce_pp_baseline is REINFORCE++ with the
// group-mean baseline (then the global batch whitening).
class MeanBaselineEstimator : public AdvantageEstimator {
 public:
  MeanBaselineEstimator(std::string_view name, bool divide_std, bool whiten)
      : name_(name), divide_std_(divide_std), whiten_(whiten) {}
  std::string_view name() const override { return name_; }
  bool whiten() const override { return whiten_; }

  std::vector<double> Compute(const QueryLeaves& q) const override {
    const double mean = Mean(q);
    return CenteredRewards(q, mean, divide_std_ ? InverseStd(q, mean) : 1.0);
  }

 private:
  std::string_view name_;
  bool divide_std_, whiten_;
};

// rloo: R_i - mean of the other leaves (0 for a single leaf).
class RlooEstimator : public AdvantageEstimator {
 public:
  std::string_view name() const override { return "rloo"; }
  bool whiten() const override { return false; }
  std::vector<double> Compute(const QueryLeaves& q) const override {
    const size_t n = q.leaves.size();
    double sum = 0.0;
    for (const LeafSample& l : q.leaves) sum += l.reward;
    std::vector<double> out(n, 0.0);
    if (n < 2) return out;
    for (size_t i = 0; i < n; ++i) {
      const double r = q.leaves[i].reward;
      out[i] = r - (sum - r) / static_cast<double>(n - 1);
    }
    return out;
  }
};

// reinforce_pp: REINFORCE++ (Hu et al., 2025) for outcome rewards without a KL term in the
// reward: every token of a leaf gets the leaf's return R_i (no per-query baseline), and the
// advantages are then normalised over the global batch, token-weighted (the whitening step):
// A = (R_i - mean over the batch's tokens) / std over them.
class ReinforcePpEstimator : public AdvantageEstimator {
 public:
  std::string_view name() const override { return "reinforce_pp"; }
  bool whiten() const override { return true; }
  std::vector<double> Compute(const QueryLeaves& q) const override {
    std::vector<double> out;
    out.reserve(q.leaves.size());
    for (const LeafSample& l : q.leaves) out.push_back(l.reward);
    return out;
  }
};

// tree_segment and tree_segment_global: advantages per segment from the tree's subtree values
// (TreeRL, Hou et al. 2025). V(s) is the mean reward of the leaves under node s, V(root) the
// query's mean. A node's local advantage is V(s) - V(a), a its nearest ancestor holding more
// leaves (the branch point its chain hangs from; the root if none): a segment is credited with
// the change in value its own choice made, and along a path the local terms add up to
// R_i - mean. tree_segment_global adds the global term V(s) - V(root). Both are divided by the
// query's unbiased reward std + 1e-6, as grpo; no batch whitening. Compute() gives each leaf
// the sum of its path's local terms (its grpo advantage).
class SegmentValueEstimator : public AdvantageEstimator {
 public:
  explicit SegmentValueEstimator(bool global) : global_(global) {}
  std::string_view name() const override {
    return global_ ? "tree_segment_global" : "tree_segment";
  }
  bool whiten() const override { return false; }
  bool segmented() const override { return true; }

  std::vector<double> Compute(const QueryLeaves& q) const override {
    const double mean = Mean(q);
    return CenteredRewards(q, mean, InverseStd(q, mean));
  }

  std::vector<std::vector<double>> ComputeSegments(const QueryLeaves& q) const override {
    const std::unordered_map<uint64_t, SubtreeStats> sub = Subtrees(q);
    const double mean = Mean(q), scale = InverseStd(q, mean);
    std::vector<std::vector<double>> out;
    out.reserve(q.leaves.size());
    for (const LeafSample& l : q.leaves) {
      std::vector<double> row;
      row.reserve(l.path.size());
      // Leaf sets shrink along a path; `above` is the value of the nearest larger one.
      double above = mean, value = mean;
      int count = static_cast<int>(q.leaves.size());
      for (uint64_t id : l.path) {
        const SubtreeStats& s = sub.at(id);
        if (s.count < count) above = value;
        count = s.count;
        value = s.sum / s.count;
        const double local = value - above;
        row.push_back((global_ ? local + (value - mean) : local) * scale);
      }
      out.push_back(std::move(row));
    }
    return out;
  }

 private:
  bool global_;
};

// A plug-in's estimator: the C descriptor called through its function pointer.
class PluginEstimator : public AdvantageEstimator {
 public:
  explicit PluginEstimator(const TreepoEstimatorPlugin& d, std::string name)
      : d_(d), name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  bool whiten() const override { return d_.whiten != 0; }
  std::vector<double> Compute(const QueryLeaves& q) const override {
    std::vector<TreepoLeaf> leaves;
    leaves.reserve(q.leaves.size());
    for (const LeafSample& l : q.leaves) {
      leaves.push_back({l.node, l.reward, l.path.data(), l.path.size(), l.tokens});
    }
    TreepoQuery cq{{q.query_id.data(), q.query_id.size()}, leaves.data(), leaves.size()};
    std::vector<double> out(q.leaves.size(), 0.0);
    if (!out.empty()) d_.compute(d_.state, &cq, out.data());
    return out;
  }

 private:
  TreepoEstimatorPlugin d_;  // d_.name is not used (it points into the caller's memory)
  std::string name_;
};

template <typename T, typename... A>
AdvantageEstimatorRegistry::Factory Builtin(A... args) {
  return [=]() -> Result<std::unique_ptr<AdvantageEstimator>> {
    return std::unique_ptr<AdvantageEstimator>(new T(args...));
  };
}

void RegisterBuiltins(AdvantageEstimatorRegistry& r) {
  TREEPO_CHECK_OK(r.Register("treepo", Builtin<TreepoEstimator>(false)));
  TREEPO_CHECK_OK(r.Register("treepo_size_weighted", Builtin<TreepoEstimator>(true)));
  TREEPO_CHECK_OK(
      r.Register("grpo", Builtin<MeanBaselineEstimator>(std::string_view("grpo"), true, false)));
  TREEPO_CHECK_OK(r.Register(
      "dr_grpo", Builtin<MeanBaselineEstimator>(std::string_view("dr_grpo"), false, false)));
  TREEPO_CHECK_OK(r.Register("rloo", Builtin<RlooEstimator>()));
  TREEPO_CHECK_OK(r.Register(
      "reinforce_pp_baseline",
      Builtin<MeanBaselineEstimator>(std::string_view("reinforce_pp_baseline"), false, true)));
  TREEPO_CHECK_OK(r.Register("reinforce_pp", Builtin<ReinforcePpEstimator>()));
  TREEPO_CHECK_OK(r.Register("tree_segment", Builtin<SegmentValueEstimator>(false)));
  TREEPO_CHECK_OK(r.Register("tree_segment_global", Builtin<SegmentValueEstimator>(true)));
}

}  // namespace

Result<QueryLeaves> LeavesFromTree(const TreeRecord& tree) {
  std::unordered_map<uint64_t, const TreeNodeRecord*> by_id;
  for (const TreeNodeRecord& n : tree.nodes) by_id[n.id] = &n;
  QueryLeaves q;
  q.query_id = tree.query_id;
  for (const TreeLeafRecord& leaf : tree.leaves) {
    if (leaf.response_tokens < 0) {
      return InvalidArgument("query " + tree.query_id + ": leaf " + std::to_string(leaf.node) +
                             " has negative response_tokens");
    }
    LeafSample s;
    s.node = leaf.node;
    s.reward = leaf.reward;
    s.tokens = leaf.response_tokens;
    std::unordered_set<uint64_t> seen;
    std::optional<uint64_t> cur = leaf.node;
    while (cur) {
      auto it = by_id.find(*cur);
      if (it == by_id.end()) {
        return InvalidArgument("query " + tree.query_id + ": leaf " + std::to_string(leaf.node) +
                               " reaches unknown node " + std::to_string(*cur));
      }
      if (!seen.insert(*cur).second) {
        return InvalidArgument("query " + tree.query_id + ": parent cycle at node " +
                               std::to_string(*cur));
      }
      s.path.push_back(*cur);
      cur = it->second->parent;
    }
    std::reverse(s.path.begin(), s.path.end());
    q.leaves.push_back(std::move(s));
  }
  return q;
}

AdvantageEstimatorRegistry& AdvantageEstimators() {
  static AdvantageEstimatorRegistry* registry = [] {
    auto* r = new AdvantageEstimatorRegistry("advantage estimator");
    RegisterBuiltins(*r);
    return r;
  }();
  return *registry;
}

Status RegisterEstimatorPlugin(const TreepoEstimatorPlugin& plugin) {
  if (plugin.compute == nullptr) {
    return InvalidArgument(std::string("advantage estimator '") + plugin.name +
                           "': no compute function");
  }
  const std::string name = plugin.name;
  return AdvantageEstimators().Register(
      name, [plugin, name]() -> Result<std::unique_ptr<AdvantageEstimator>> {
        return std::unique_ptr<AdvantageEstimator>(new PluginEstimator(plugin, name));
      });
}

std::vector<std::string> AdvantageEstimatorNames() { return AdvantageEstimators().Names(); }

Result<std::unique_ptr<AdvantageEstimator>> MakeAdvantageEstimator(std::string_view name) {
  return AdvantageEstimators().Make(name);
}

std::vector<std::vector<double>> WhitenByTokens(
    std::span<const QueryLeaves> batch, const std::vector<std::vector<double>>& advantages) {
  double n = 0.0, sum = 0.0;
  for (size_t q = 0; q < batch.size(); ++q) {
    for (size_t i = 0; i < batch[q].leaves.size(); ++i) {
      const double w = batch[q].leaves[i].tokens;
      n += w;
      sum += w * advantages[q][i];
    }
  }
  const double mean = n > 0 ? sum / n : 0.0;
  double ss = 0.0;
  for (size_t q = 0; q < batch.size(); ++q) {
    for (size_t i = 0; i < batch[q].leaves.size(); ++i) {
      const double d = advantages[q][i] - mean;
      ss += batch[q].leaves[i].tokens * d * d;
    }
  }
  const double var = n >= 2 ? ss / (n - 1) : 0.0;
  const double inv = 1.0 / std::sqrt(var + 1e-8);
  std::vector<std::vector<double>> out = advantages;
  for (auto& row : out) {
    for (double& a : row) a = (a - mean) * inv;
  }
  return out;
}

BatchAdvantages ComputeBatchAdvantages(const AdvantageEstimator& estimator,
                                       std::span<const QueryLeaves> batch) {
  BatchAdvantages out;
  for (const QueryLeaves& q : batch) out.raw.push_back(estimator.Compute(q));
  out.whitened = estimator.whiten() ? WhitenByTokens(batch, out.raw) : out.raw;
  return out;
}

}  // namespace treepo::learner

// Advantage estimators (TREEPO_SPEC.md section 5): per query, the finished leaves with their
// rewards and ancestor chains go in; one scalar per leaf comes out, put on every response
// token of that leaf (or, from a per-segment estimator, one per node of the leaf's path).
// Estimators are chosen by name from AdvantageEstimators(), a registry that holds the built-ins and
// what plug-ins add (docs/plugins.md); batch whitening is a separate step over the whole training
// batch.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/plugin/treepo_plugin.h"
#include "common/registry.h"
#include "common/status.h"
#include "common/tree/tree_record.h"

namespace treepo::learner {

// One finished leaf as the estimators see it.
struct LeafSample {
  uint64_t node = 0;  // the leaf's last node
  float reward = 0.0f;
  std::vector<uint64_t> path;  // node ids root-to-leaf: depth-1 node first, `node` last
  int tokens = 0;              // valid response tokens (the whitening weight), >= 0
};

// The leaves of one query (one tree).
struct QueryLeaves {
  std::string query_id;
  std::vector<LeafSample> leaves;
};

// Builds a query's leaves from a tree record: paths come from the nodes' parent links, the
// token count is the leaf's response_tokens. Refuses unknown nodes, parent cycles and negative
// token counts with kInvalidArgument.
Result<QueryLeaves> LeavesFromTree(const TreeRecord& tree);

class AdvantageEstimator {
 public:
  virtual ~AdvantageEstimator() = default;
  virtual std::string_view name() const = 0;
  // Advantages before whitening, one per leaf of `q`, in order. An empty query gives none.
  virtual std::vector<double> Compute(const QueryLeaves& q) const = 0;
  // Whether the batch whitening of section 5 follows.
  virtual bool whiten() const = 0;
  // A per-segment estimator trains on ComputeSegments (one advantage per node of each leaf's
  // path: out[i][k] goes on the response tokens of q.leaves[i].path[k], whitened over the
  // trained tokens when whiten()); Compute() then gives each leaf one summary value (for
  // `treepo advantages` and the metrics). Others put Compute(q)[i] on every token of leaf i.
  virtual bool segmented() const { return false; }
  virtual std::vector<std::vector<double>> ComputeSegments(const QueryLeaves& /*q*/) const {
    return {};
  }
};

using AdvantageEstimatorRegistry = Registry<AdvantageEstimator>;
// The process's registry. The built-ins are registered on first use, in this order (the
// default first): treepo, treepo_size_weighted, grpo, dr_grpo, rloo, reinforce_pp_baseline,
// reinforce_pp.
AdvantageEstimatorRegistry& AdvantageEstimators();
// Registers a plug-in's estimator (a C descriptor, copied) under its name.
Status RegisterEstimatorPlugin(const TreepoEstimatorPlugin& plugin);

// Names accepted by MakeAdvantageEstimator, the default ("treepo") first.
std::vector<std::string> AdvantageEstimatorNames();
// kInvalidArgument listing the accepted names when `name` is unknown.
Result<std::unique_ptr<AdvantageEstimator>> MakeAdvantageEstimator(std::string_view name);

// Whitening over all valid response tokens of a batch: each leaf's advantage counts
// `tokens` times. Subtracts the token-weighted mean and divides by
// sqrt(unbiased token-weighted variance + 1e-8), the variance taken over the N tokens with
// N - 1 in the denominator (0 when N < 2). `advantages[q][i]` belongs to batch[q].leaves[i].
std::vector<std::vector<double>> WhitenByTokens(std::span<const QueryLeaves> batch,
                                                const std::vector<std::vector<double>>& advantages);

// Advantages of a batch, before and after whitening (equal when the estimator does not
// whiten); indexed like WhitenByTokens.
struct BatchAdvantages {
  std::vector<std::vector<double>> raw;
  std::vector<std::vector<double>> whitened;
};
BatchAdvantages ComputeBatchAdvantages(const AdvantageEstimator& estimator,
                                       std::span<const QueryLeaves> batch);

}  // namespace treepo::learner

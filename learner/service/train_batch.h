// The learner's view of a TreeBatch: one training sequence per leaf (prompt + response tokens)
// with a per-token advantage on the response tokens only, the rollout's log-probs (to report
// the mismatch against the recomputed ones) and the weight version that sampled each token.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/tree/tree_record.h"
#include "learner/advantage/advantage.h"

namespace treepo::learner {

struct TrainSequence {
  std::vector<int32_t> tokens;      // prompt tokens, then response tokens
  int prompt_len = 0;               // >= 1; response token j sits at tokens[prompt_len + j]
  std::vector<float> advantages;    // [response tokens] the leaf's (whitened) advantage
  std::vector<float> rollout_logp;  // [response tokens] log-probs the worker reported
  std::vector<uint64_t> versions;   // [response tokens] weight version of the node it came from
  size_t tree = 0;                  // index of the leaf's tree in the batch
  std::string query_id;             // the tree's query
  float reward = 0.0f;

  int response_tokens() const { return static_cast<int>(tokens.size()) - prompt_len; }
};

struct LearnerBatch {
  std::vector<TrainSequence> sequences;  // grouped by tree, trees in batch order
  int64_t response_tokens = 0;           // sum over sequences
  double advantage_mean = 0.0;           // token-weighted, advantages as trained on
  double advantage_std = 0.0;            // token-weighted (population)
  double raw_advantage_mean = 0.0;       // token-weighted, before whitening
  double reward_mean = 0.0;              // over leaves
  int64_t truncated_sequences = 0;       // responses cut to fit max_seq_len
  int64_t empty_leaves = 0;              // leaves with no response token (not trained on)
};

// Builds the batch: advantages from `estimator` (whitened over the batch's response tokens
// when the estimator asks for it; a per-segment estimator's per node of the path, whitened over
// the tokens trained on), one sequence per leaf with at least one response token.
// Responses longer than max_seq_len - prompt_len are truncated (counted). Refuses malformed
// trees and prompts that leave no room for a response (kInvalidArgument).
//
// Data-parallel ranks each build the batch of their shard; `reduce_sum` (sums a few doubles
// over every rank in place, e.g. a collective all-reduce) makes the whitening's token-weighted
// mean and variance those of the whole batch, so a leaf gets the advantage it would get in a
// single learner's batch. Empty: the batch is whole.
using SumReducer = std::function<Status(std::span<double>)>;
Result<LearnerBatch> BuildLearnerBatch(const std::vector<TreeRecord>& trees,
                                       const AdvantageEstimator& estimator, int max_seq_len,
                                       const SumReducer& reduce_sum = {});

}  // namespace treepo::learner

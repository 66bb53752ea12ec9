#include "learner/service/train_batch.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>

namespace treepo::learner {
namespace {

// WhitenByTokens over the leaves of every rank: the same two passes, each sum reduced.
Result<BatchAdvantages> ShardAdvantages(const AdvantageEstimator& estimator,
                                        std::span<const QueryLeaves> batch,
                                        const SumReducer& reduce_sum) {
  BatchAdvantages out;
  for (const QueryLeaves& q : batch) out.raw.push_back(estimator.Compute(q));
  out.whitened = out.raw;
  if (!estimator.whiten()) return out;
  double sums[2] = {0.0, 0.0};  // tokens, token-weighted advantage
  for (size_t q = 0; q < batch.size(); ++q) {
    for (size_t i = 0; i < batch[q].leaves.size(); ++i) {
      sums[0] += batch[q].leaves[i].tokens;
      sums[1] += batch[q].leaves[i].tokens * out.raw[q][i];
    }
  }
  TREEPO_RETURN_IF_ERROR(reduce_sum(sums));
  const double n = sums[0];
  const double mean = n > 0 ? sums[1] / n : 0.0;
  double ss = 0.0;
  for (size_t q = 0; q < batch.size(); ++q) {
    for (size_t i = 0; i < batch[q].leaves.size(); ++i) {
      const double d = out.raw[q][i] - mean;
      ss += batch[q].leaves[i].tokens * d * d;
    }
  }
  TREEPO_RETURN_IF_ERROR(reduce_sum(std::span<double>(&ss, 1)));
  const double var = n >= 2 ? ss / (n - 1) : 0.0;
  const double inv = 1.0 / std::sqrt(var + 1e-8);
  for (auto& row : out.whitened) {
    for (double& a : row) a = (a - mean) * inv;
  }
  return out;
}

// The whitening of section 5 over the trained tokens themselves (per-segment estimators): every
// token one sample, sums reduced over the ranks when `reduce_sum` is set.
Status WhitenTokens(LearnerBatch* batch, const SumReducer& reduce_sum) {
  double sums[2] = {0.0, 0.0};  // tokens, advantage sum
  for (const TrainSequence& s : batch->sequences) {
    sums[0] += static_cast<double>(s.advantages.size());
    for (float a : s.advantages) sums[1] += a;
  }
  if (reduce_sum) TREEPO_RETURN_IF_ERROR(reduce_sum(sums));
  const double n = sums[0];
  const double mean = n > 0 ? sums[1] / n : 0.0;
  double ss = 0.0;
  for (const TrainSequence& s : batch->sequences) {
    for (float a : s.advantages) ss += (a - mean) * (a - mean);
  }
  if (reduce_sum) TREEPO_RETURN_IF_ERROR(reduce_sum(std::span<double>(&ss, 1)));
  const double inv = 1.0 / std::sqrt((n >= 2 ? ss / (n - 1) : 0.0) + 1e-8);
  for (TrainSequence& s : batch->sequences) {
    for (float& a : s.advantages) a = static_cast<float>((a - mean) * inv);
  }
  return OkStatus();
}

}  // namespace

Result<LearnerBatch> BuildLearnerBatch(const std::vector<TreeRecord>& trees,
                                       const AdvantageEstimator& estimator, int max_seq_len,
                                       const SumReducer& reduce_sum) {
  std::vector<QueryLeaves> queries;
  queries.reserve(trees.size());
  for (const TreeRecord& t : trees) {
    TREEPO_RETURN_IF_ERROR(t.Validate());
    TREEPO_ASSIGN_OR_RETURN(QueryLeaves q, LeavesFromTree(t));
    queries.push_back(std::move(q));
  }
  // Per-segment estimators: one advantage per path node, whitened below over the tokens.
  const bool segmented = estimator.segmented();
  std::vector<std::vector<std::vector<double>>> segments(queries.size());
  BatchAdvantages adv;
  if (segmented) {
    for (size_t q = 0; q < queries.size(); ++q) segments[q] = estimator.ComputeSegments(queries[q]);
  } else if (reduce_sum) {
    TREEPO_ASSIGN_OR_RETURN(adv, ShardAdvantages(estimator, queries, reduce_sum));
  } else {
    adv = ComputeBatchAdvantages(estimator, queries);
  }

  LearnerBatch batch;
  double reward_sum = 0.0, raw_sum = 0.0;
  int64_t leaves = 0;
  for (size_t q = 0; q < trees.size(); ++q) {
    const TreeRecord& t = trees[q];
    if (t.prompt_tokens.empty()) return InvalidArgument("tree " + t.query_id + " has no prompt");
    const int prompt_len = static_cast<int>(t.prompt_tokens.size());
    if (prompt_len >= max_seq_len) {
      return InvalidArgument("tree " + t.query_id + ": prompt of " + std::to_string(prompt_len) +
                             " tokens leaves no room for a response (max_seq_len " +
                             std::to_string(max_seq_len) + ")");
    }
    std::unordered_map<uint64_t, const TreeNodeRecord*> nodes;
    for (const TreeNodeRecord& n : t.nodes) nodes[n.id] = &n;
    for (size_t i = 0; i < t.leaves.size(); ++i) {
      const TreeLeafRecord& leaf = t.leaves[i];
      ++leaves;
      reward_sum += leaf.reward;
      TrainSequence s;
      s.tree = q;
      s.query_id = t.query_id;
      s.reward = leaf.reward;
      s.prompt_len = prompt_len;
      s.tokens = t.prompt_tokens;
      const std::vector<uint64_t> path = t.PathTo(leaf.node);
      for (uint64_t id : path) {
        const TreeNodeRecord& n = *nodes.at(id);
        s.tokens.insert(s.tokens.end(), n.tokens.begin(), n.tokens.end());
        s.rollout_logp.insert(s.rollout_logp.end(), n.logprobs.begin(), n.logprobs.end());
        s.versions.insert(s.versions.end(), n.tokens.size(), n.weight_version);
      }
      size_t n_resp = std::min<size_t>(s.rollout_logp.size(),
                                       static_cast<size_t>(std::max(0, leaf.response_tokens)));
      const size_t room = static_cast<size_t>(max_seq_len - prompt_len);
      if (n_resp > room) {
        n_resp = room;
        ++batch.truncated_sequences;
      }
      if (n_resp == 0) {
        ++batch.empty_leaves;
        continue;
      }
      s.tokens.resize(static_cast<size_t>(prompt_len) + n_resp);
      s.rollout_logp.resize(n_resp);
      s.versions.resize(n_resp);
      if (segmented) {
        // Node k of the path covers its tokens.size() next response tokens.
        if (segments[q].size() != t.leaves.size() || segments[q][i].size() != path.size()) {
          return Internal("estimator " + std::string(estimator.name()) +
                          " gave no segment advantages matching leaf " + std::to_string(leaf.node) +
                          "'s path of " + std::to_string(path.size()) + " nodes");
        }
        const std::vector<double>& seg = segments[q][i];
        for (size_t k = 0; k < path.size() && s.advantages.size() < n_resp; ++k) {
          const size_t len =
              std::min(nodes.at(path[k])->tokens.size(), n_resp - s.advantages.size());
          s.advantages.insert(s.advantages.end(), len, static_cast<float>(seg[k]));
          raw_sum += seg[k] * static_cast<double>(len);
        }
      } else {
        s.advantages.assign(n_resp, static_cast<float>(adv.whitened[q][i]));
        raw_sum += adv.raw[q][i] * static_cast<double>(n_resp);
      }
      batch.response_tokens += static_cast<int64_t>(n_resp);
      batch.sequences.push_back(std::move(s));
    }
  }
  if (segmented && estimator.whiten()) {
    TREEPO_RETURN_IF_ERROR(WhitenTokens(&batch, reduce_sum));
  }
  double adv_sum = 0.0, adv_sq = 0.0;
  for (const TrainSequence& s : batch.sequences) {
    for (float a : s.advantages) adv_sum += a, adv_sq += static_cast<double>(a) * a;
  }
  if (leaves > 0) batch.reward_mean = reward_sum / static_cast<double>(leaves);
  if (batch.response_tokens > 0) {
    const double n = static_cast<double>(batch.response_tokens);
    batch.advantage_mean = adv_sum / n;
    batch.raw_advantage_mean = raw_sum / n;
    batch.advantage_std =
        std::sqrt(std::max(0.0, adv_sq / n - batch.advantage_mean * batch.advantage_mean));
  }
  return batch;
}

}  // namespace treepo::learner

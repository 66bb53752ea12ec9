// TreeSampler: one query's TreePO rollout (TREEPO_SPEC.md section 2) as a state machine,
// with no transport, engine or clock. The scheduler service drives many of them at once.
//
// API summary
//   auto s = TreeSampler::Create(query, options, detokenize, &ids);   // Result<unique_ptr>
//   loop:
//     for (protocols::SegmentTask& t : s->TakeRequests()) dispatch(t);  // new work, if any
//     s->OnResult(child, worker);                // one child's segment, any order
//     for (NodeId n : s->TakeReleasable()) free_kv(n);                // KV no longer needed
//   until s->Done();  then TreeRecord t = s->TakeTree();              // leaves unscored
//
// Each query steps on its own: when every live path of THIS query has reported, the sampler
// applies the stop rules (in the spec's order), branches with budget transfer, and refills
// by fallback when no path is live and leaves < w. It ends with exactly w leaves.
// Sequential mode: w independent paths from the prompt, each result processed on arrival.
//
// Determinism: every random choice (initial divergence k, fallback order and cuts) comes
// from MixSeed(run seed, query id, step), and each child's sampling seed from its parent's
// seed (the query seed for the prompt) and its index among that parent's children, so it
// does not depend on arrival order. Node ids come from `ids` in an order that does not depend
// on arrival order either, so a node's sampling stream (the worker's NodeRng(seed, id)) is the
// same in every run: in tree mode a query spawns only after all its live paths reported, in
// creation order; in sequential mode, where each result is processed on arrival, Create takes
// the ids of every (sample i, depth j) up front and node (i, j) always gets the same one. The
// tree record lists nodes in creation order (tree mode) or by (sample, depth) (sequential).
//
// KV release: a node's KV is kept while it is on a live path (an ancestor of, or, a pending
// node) or is a strict ancestor of a FINISHED/EOS leaf (a fallback may cut back to it);
// leaf nodes themselves are never reused and are released as they end. Everything left is
// released when the query is done.
//
// Thread-safety: none; a sampler belongs to the scheduler's loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "common/tree/tree_record.h"
#include "scheduler/tree/policies.h"
#include "scheduler/tree/query_tree.h"
#include "scheduler/tree/stop_rules.h"

namespace treepo::scheduler {

// Token ids -> text (the stop rules read a segment's decoded text). Must be deterministic.
using Detokenizer = std::function<std::string(const std::vector<int32_t>&)>;

struct SamplerOptions {
  int width = 16;                     // w: leaves per query
  int segment_tokens = 512;           // L
  int max_depth = 14;                 // d; response cap d * L tokens
  int branch_factor = 2;              // b
  bool more_init_divergence = false;  // k uniform in {b..k_max} (true) or k = b
  int init_divergence_max = 8;        // k_max (<= w) when more_init_divergence
  StopOptions stop;
  BranchingOptions branching;
  std::string fallback_policy = "depth_first";
  int fallback_window_tokens = 0;          // fallback cut granularity; <= 0 means L; multiple of L
  bool sequential = false;                 // w independent samples (baseline)
  bool sequential_single_segment = false;  // sequential: one segment of d * L tokens
  uint64_t seed = 0;                       // run seed

  Status Validate() const;
};

struct SamplerQuery {
  QueryId id;          // non-zero
  std::string name;    // TreeRecord::query_id
  std::string prompt;  // text (recorded only)
  std::string answer;  // reference answer (recorded only)
  std::vector<int32_t> prompt_tokens;
};

class TreeSampler {
 public:
  // `ids` is shared by every sampler of the run and must outlive this one.
  static Result<std::unique_ptr<TreeSampler>> Create(SamplerQuery query,
                                                     const SamplerOptions& options,
                                                     Detokenizer detokenize, NodeIdAllocator* ids);

  // Segment tasks made since the last call (the first call returns the initial step): query
  // id, parent (PromptNode(query) for a segment that continues the prompt), children, seeds,
  // max_new_tokens (decode exactly this many unless EOS) and prefix_tokens = the parent's
  // whole token path (prompt + response). Task id and sampling parameters are the caller's.
  std::vector<protocols::SegmentTask> TakeRequests();
  // Consumes one pending node's segment, computed by `worker` (tokens == max_new_tokens
  // unless it ended with EOS). InvalidArgument for a malformed output (wrong length, log-prob
  // count); FailedPrecondition for an unknown or already reported node. On error nothing
  // changes.
  Status OnResult(const protocols::ChildResult& output, WorkerId worker);
  // Nodes whose KV is no longer needed, each reported once.
  std::vector<NodeId> TakeReleasable();
  bool Done() const { return done_; }
  // The finished tree; rewards 0. Precondition: Done(); call once.
  TreeRecord TakeTree();

  const QueryTree& tree() const { return tree_; }
  int leaves() const { return static_cast<int>(leaves_.size()); }
  int pending() const { return static_cast<int>(pending_.size()); }
  int steps() const { return step_; }

 private:
  TreeSampler(SamplerQuery query, const SamplerOptions& options, Detokenizer detokenize,
              NodeIdAllocator* ids, StopRuleSet stop, std::unique_ptr<BranchingPolicy> branching,
              std::unique_ptr<FallbackPolicy> fallback);

  uint64_t QuerySeed() const;
  // Sequential mode: the id of the child of `parent` (nullopt: the prompt, `index`: the sample).
  NodeId SequentialId(std::optional<NodeId> parent, int index);
  // Adds `copies` children under `parent` as one request.
  void Spawn(std::optional<NodeId> parent, int copies);
  // Applies the stop rules to reported nodes, then branches / falls back.
  void Step(const std::vector<NodeId>& reported);
  void Fallback();
  void UpdateReleasable();

  SamplerQuery query_;
  SamplerOptions options_;
  Detokenizer detokenize_;
  NodeIdAllocator* ids_;
  StopRuleSet stop_;
  std::unique_ptr<BranchingPolicy> branching_;
  std::unique_ptr<FallbackPolicy> fallback_;

  QueryTree tree_;
  std::vector<NodeId> pending_;   // requested, not reported (creation order)
  std::vector<NodeId> reported_;  // reported in the current step
  std::vector<NodeId> leaves_;    // leaf nodes in the order they ended
  std::vector<protocols::SegmentTask> requests_;
  std::vector<NodeId> releasable_;
  std::vector<bool> released_;  // by node ordinal
  int prompt_child_count_ = 0;  // children spawned under the prompt so far
  // Sequential mode: the id of sample i at depth j (1-based) is
  // sequential_ids_[i * depths + j - 1]; sample_of_ maps a node id to its sample index.
  std::vector<NodeId> sequential_ids_;
  std::unordered_map<uint64_t, int> sample_of_;
  int step_ = 0;
  bool done_ = false;
};

}  // namespace treepo::scheduler

// One query's tree as the sampler grows it: nodes (segments) with their tokens, log-probs,
// decoded text, finish reason, depth, the worker that holds their KV and the weight version
// that sampled them. Node ids are unique across the run (NodeIdAllocator, shared by every
// query); id 0 stands for the prompt and is never allocated.
//
// Thread-safety: none (a QueryTree belongs to one TreeSampler).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/tree/tree_record.h"
#include "protocols/messages.h"

namespace treepo::scheduler {

// The run's node ids: query q's nodes are (q << 32) | k, k = 0 for its prompt node (the KV of
// the prompt, held on a worker for the query's life) and k = 1, 2, ... for its segments.
inline NodeId PromptNode(QueryId query) { return NodeId(query.value() << 32); }

// Hands out node ids first, first + 1, ... Not thread-safe: owned by the scheduler loop. A
// rollout gives each query its own, starting at PromptNode(query) + 1.
class NodeIdAllocator {
 public:
  explicit NodeIdAllocator(uint64_t first = 1) : next_(first) {}
  NodeId Next() { return NodeId(next_++); }

 private:
  uint64_t next_;
};

struct TreeNode {
  NodeId id;
  std::optional<NodeId> parent;  // nullopt: child of the prompt (depth 1)
  int depth = 0;                 // 1 for the first segment
  uint64_t ordinal = 0;          // creation index within the query (seed derivation)
  uint64_t seed = 0;             // sampling seed sent to the worker
  int child_count = 0;           // children spawned under this node so far
  int max_new_tokens = 0;        // what the worker was asked to decode
  bool reported = false;         // the worker's result arrived
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::string text;
  protocols::SegmentFinish segment_finish = protocols::SegmentFinish::kLength;  // the engine's
  FinishReason finish = FinishReason::kNone;  // set when this node ended a path
  WorkerId worker;
  WeightVersion weight_version;
  int response_tokens = 0;   // tokens on the path up to and including this node
  double cum_logprob = 0.0;  // sum of log-probs on the path up to this node
};

class QueryTree {
 public:
  explicit QueryTree(std::vector<int32_t> prompt_tokens)
      : prompt_tokens_(std::move(prompt_tokens)) {}

  const std::vector<int32_t>& prompt_tokens() const { return prompt_tokens_; }
  // Adds an unreported node under `parent` (nullopt = the prompt). `parent` must exist.
  TreeNode& Add(NodeId id, std::optional<NodeId> parent, uint64_t seed, int max_new_tokens);
  bool Contains(NodeId id) const { return index_.count(id) != 0; }
  TreeNode& at(NodeId id) { return nodes_[index_.at(id)]; }
  const TreeNode& at(NodeId id) const { return nodes_[index_.at(id)]; }
  // Nodes in creation order (parents before children).
  const std::vector<TreeNode>& nodes() const { return nodes_; }
  // Node ids from the depth-1 node down to `id` inclusive.
  std::vector<NodeId> Path(NodeId id) const;
  // The response tokens on the path to `id` (prompt excluded); empty for nullopt.
  std::vector<int32_t> ResponseTokens(std::optional<NodeId> id) const;

 private:
  std::vector<int32_t> prompt_tokens_;
  std::vector<TreeNode> nodes_;
  std::unordered_map<NodeId, size_t> index_;
};

}  // namespace treepo::scheduler

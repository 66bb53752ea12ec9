#include "scheduler/tree/query_tree.h"

#include <algorithm>

#include "common/check.h"

namespace treepo::scheduler {

TreeNode& QueryTree::Add(NodeId id, std::optional<NodeId> parent, uint64_t seed,
                         int max_new_tokens) {
  TREEPO_CHECK(id.value() != 0);
  TREEPO_CHECK(!Contains(id));
  TreeNode n;
  n.id = id;
  n.parent = parent;
  n.depth = parent ? at(*parent).depth + 1 : 1;
  n.ordinal = nodes_.size();
  n.seed = seed;
  n.max_new_tokens = max_new_tokens;
  index_[id] = nodes_.size();
  nodes_.push_back(std::move(n));
  return nodes_.back();
}

std::vector<NodeId> QueryTree::Path(NodeId id) const {
  std::vector<NodeId> path;
  std::optional<NodeId> cur = id;
  while (cur) {
    path.push_back(*cur);
    cur = at(*cur).parent;
  }
  std::reverse(path.begin(), path.end());
  return path;
}

std::vector<int32_t> QueryTree::ResponseTokens(std::optional<NodeId> id) const {
  std::vector<int32_t> out;
  if (!id) return out;
  for (NodeId n : Path(*id)) {
    const auto& t = at(n).tokens;
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

}  // namespace treepo::scheduler

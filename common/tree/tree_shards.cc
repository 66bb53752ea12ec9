#include "common/tree/tree_shards.h"

#include <algorithm>
#include <numeric>
#include <unordered_map>

#include "common/check.h"

namespace treepo {

int64_t TreeTrainTokens(const TreeRecord& tree) {
  std::unordered_map<uint64_t, const TreeNodeRecord*> nodes;
  for (const TreeNodeRecord& n : tree.nodes) nodes[n.id] = &n;
  int64_t total = 0;
  for (const TreeLeafRecord& leaf : tree.leaves) {
    total += static_cast<int64_t>(tree.prompt_tokens.size());
    for (uint64_t id : tree.PathTo(leaf.node)) {
      auto it = nodes.find(id);
      if (it != nodes.end()) total += static_cast<int64_t>(it->second->tokens.size());
    }
  }
  return total;
}

std::vector<std::vector<size_t>> ShardTreesByTokens(const std::vector<TreeRecord>& trees,
                                                    int shards) {
  TREEPO_CHECK(shards >= 1);
  std::vector<int64_t> tokens(trees.size());
  for (size_t i = 0; i < trees.size(); ++i) tokens[i] = TreeTrainTokens(trees[i]);
  std::vector<size_t> order(trees.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tokens[a] > tokens[b]; });
  std::vector<std::vector<size_t>> out(static_cast<size_t>(shards));
  std::vector<int64_t> load(static_cast<size_t>(shards), 0);
  for (size_t i : order) {
    const size_t r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    out[r].push_back(i);
    load[r] += tokens[i];
  }
  for (auto& s : out) std::sort(s.begin(), s.end());
  return out;
}

}  // namespace treepo

// Splitting a batch of trees across data-parallel learner ranks.
#pragma once

#include <cstdint>
#include <vector>

#include "common/tree/tree_record.h"

namespace treepo {

// Tokens a learner trains on for `tree`: over every leaf, the prompt plus the tokens of the
// leaf's root-to-leaf path (what a per-path learner runs through the model).
int64_t TreeTrainTokens(const TreeRecord& tree);

// Assigns each tree to one of `shards` ranks (a tree is never split), balancing the ranks'
// TreeTrainTokens: trees in decreasing token order each go to the rank with the fewest tokens
// so far (ties: the lowest rank). Returns per rank the indices into `trees`, ascending, so a
// rank sees its trees in batch order. Deterministic. Precondition: shards >= 1.
std::vector<std::vector<size_t>> ShardTreesByTokens(const std::vector<TreeRecord>& trees,
                                                    int shards);

}  // namespace treepo

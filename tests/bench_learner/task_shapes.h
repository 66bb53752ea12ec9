// The learner benchmarks' inputs: the built-in task's model shape with random weights, and
// trees shaped like the default task's rollouts. Header-only; benchmarks only.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "common/model/weights.h"
#include "common/tree/tree_record.h"

namespace treepo::bench {

// The built-in task's model shape (docs/builtin-task.md), random weights.
inline model::ModelWeights TaskModel() {
  model::ModelConfig c;
  c.dim = 128;
  c.hidden_dim = 352;
  c.n_layers = 4;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.vocab_size = 363;
  c.max_seq_len = 128;
  auto w = model::ModelWeights::Random(c, 1);
  if (!w.ok()) std::abort();
  return std::move(*w);
}

// Default-task trees (w 8, L 16, d 4, b 2): a binary tree of 16-token segments, 8 leaves at
// depth 4, under a 10-14 token prompt; rewards +-1. The same trees on every rank.
inline std::vector<TreeRecord> TaskTrees(int n, uint64_t version) {
  std::mt19937 rng(7);
  std::vector<TreeRecord> out;
  for (int q = 0; q < n; ++q) {
    TreeRecord t;
    t.query_id = "q" + std::to_string(q);
    const int plen = 10 + static_cast<int>(rng() % 5);
    for (int i = 0; i < plen; ++i) t.prompt_tokens.push_back(1 + static_cast<int>(rng() % 362));
    uint64_t next = 1;
    std::vector<uint64_t> level;
    for (int depth = 1; depth <= 4; ++depth) {
      std::vector<uint64_t> below;
      const size_t parents = depth == 1 ? 1 : level.size();
      for (size_t p = 0; p < parents; ++p) {
        for (int c = 0; c < (depth == 1 ? 1 : 2); ++c) {
          TreeNodeRecord node;
          node.id = next++;
          if (depth > 1) node.parent = level[p];
          node.depth = depth;
          node.weight_version = version;
          for (int i = 0; i < 16; ++i) {
            node.tokens.push_back(1 + static_cast<int>(rng() % 362));
            node.logprobs.push_back(-0.5f - 0.1f * static_cast<float>(rng() % 20));
          }
          t.nodes.push_back(node);
          below.push_back(node.id);
        }
      }
      level = below;
    }
    for (uint64_t leaf : level) {
      t.leaves.push_back({leaf, (rng() % 2) ? 1.0f : -1.0f, FinishReason::kEos, 64});
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace treepo::bench

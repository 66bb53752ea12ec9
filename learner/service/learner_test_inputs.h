// Test inputs of the learner's tests: a small random model and random query trees with shared
// prefixes (header-only; tests only).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/collective/collective.h"
#include "common/model/weights.h"
#include "common/tree/tree_record.h"

namespace treepo::learner::test_inputs {

// dim 32, 2 layers, 4 heads (2 KV heads), vocab 40, 64 positions; random weights of `seed`.
inline model::ModelWeights SmallModel(uint64_t seed) {
  model::ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 40;
  c.max_seq_len = 64;
  auto w = model::ModelWeights::Random(c, seed);
  EXPECT_TRUE(w.ok());
  return std::move(*w);
}

// `n` trees of varied size: per tree 1-3 root segments, each with two leaf children (shared
// prefixes, so packed rows differ from per-leaf ones), random tokens, log-probs and 0/1
// rewards, sampled by version 0.
inline std::vector<TreeRecord> RandomTrees(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<TreeRecord> trees;
  for (int q = 0; q < n; ++q) {
    TreeRecord t;
    t.query_id = "q" + std::to_string(q);
    for (int i = uni(2, 6); i > 0; --i) t.prompt_tokens.push_back(uni(1, 39));
    uint64_t id = 1;
    for (int b = uni(1, 3); b > 0; --b) {
      TreeNodeRecord root;
      root.id = id++;
      root.depth = 1;
      for (int i = uni(2, 6); i > 0; --i) {
        root.tokens.push_back(uni(1, 39));
        root.logprobs.push_back(-0.1f * uni(5, 30));
      }
      t.nodes.push_back(root);
      for (int c = 0; c < 2; ++c) {
        TreeNodeRecord leaf;
        leaf.id = id++;
        leaf.parent = root.id;
        leaf.depth = 2;
        for (int i = uni(1, 8); i > 0; --i) {
          leaf.tokens.push_back(uni(1, 39));
          leaf.logprobs.push_back(-0.1f * uni(5, 30));
        }
        t.nodes.push_back(leaf);
        t.leaves.push_back({leaf.id, static_cast<float>(uni(0, 1)), FinishReason::kEos,
                            static_cast<int>(root.tokens.size() + leaf.tokens.size())});
      }
    }
    trees.push_back(std::move(t));
  }
  return trees;
}

// Data-parallel ranks in one process: fn(rank, its trees, its collective) on one thread per
// shard, each with its own Gloo collective meeting in `store` under `run_id`; returns when all
// have finished.
inline void RunRanks(
    const std::vector<TreeRecord>& trees, const std::vector<std::vector<size_t>>& shards,
    const std::string& store, const std::string& run_id,
    const std::function<void(int, const std::vector<TreeRecord>&, collective::Collective&)>& fn) {
  const int world = static_cast<int>(shards.size());
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      collective::CollectiveOptions co;
      co.rank = r;
      co.world_size = world;
      co.store_dir = store;
      co.run_id = run_id;
      co.timeout_ms = 60000;
      auto c = collective::CreateCollective(co);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      std::vector<TreeRecord> mine;
      for (size_t i : shards[static_cast<size_t>(r)]) mine.push_back(trees[i]);
      fn(r, mine, **c);
    });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace treepo::learner::test_inputs

// Test helper (not product code): an in-process fake engine that plays the worker's part for
// TreeSampler, so tests can run whole queries end to end. Tokens come from a generator seeded
// by each child's seed (so outputs do not depend on arrival order); results are delivered in
// a shuffled order. Header-only; include from *_test.cc files only.
#pragma once

#include <algorithm>
#include <deque>
#include <string>
#include <vector>

#include "common/check.h"
#include "scheduler/tree/tree_sampler.h"

namespace treepo::scheduler::testing {

// Token ids of the fake vocabulary.
inline constexpr int32_t kEos = 0;
inline constexpr int32_t kBox = 1;  // decodes to "\boxed{7}"
inline constexpr int kVocab = 12;   // 2..11 decode to 'a'..'j'

inline std::string FakeDetokenize(const std::vector<int32_t>& tokens) {
  std::string s;
  for (int32_t t : tokens) {
    if (t == kBox) {
      s += "\\boxed{7}";
    } else if (t >= 2) {
      s += static_cast<char>('a' + (t - 2));
    }
  }
  return s;
}

struct FakeEngineOptions {
  double p_eos = 0.05;     // per token
  double p_box = 0.02;     // per token
  double p_repeat = 0.05;  // per segment: emit one repeated letter (fires repetition)
};

// Decodes one child's segment deterministically from its seed.
inline protocols::ChildResult FakeDecode(NodeId node, uint64_t seed, int max_new_tokens,
                                         const FakeEngineOptions& o) {
  SplitMixRng rng(seed);
  auto uniform = [&] { return static_cast<double>(rng.Next() >> 11) * 0x1.0p-53; };
  protocols::ChildResult out;
  out.node_id = node;
  out.weight_version = WeightVersion(3);
  const bool repeat = uniform() < o.p_repeat;
  for (int i = 0; i < max_new_tokens; ++i) {
    int32_t t;
    if (uniform() < o.p_eos) {
      t = kEos;
    } else if (uniform() < o.p_box) {
      t = kBox;
    } else {
      t = repeat ? 2 : static_cast<int32_t>(rng.UniformInt(2, kVocab - 1));
    }
    out.tokens.push_back(t);
    out.logprobs.push_back(-static_cast<float>(uniform() * 3.0));
    if (t == kEos) {
      out.finish = protocols::SegmentFinish::kEos;
      break;
    }
  }
  return out;
}

struct SimStats {
  int max_live_plus_leaves = 0;
  std::vector<NodeId> released;               // in release order
  std::vector<NodeId> parents_after_release;  // parents requested after their release (bug)
};

// Runs every sampler to completion, delivering results in an order shuffled by
// `arrival_seed` across all samplers (workers 1..num_workers picked at random).
inline void RunSim(std::vector<TreeSampler*> samplers, const FakeEngineOptions& engine,
                   uint64_t arrival_seed, int num_workers, SimStats* stats) {
  struct Pending {
    TreeSampler* sampler;
    protocols::ChildResult out;
    WorkerId worker;
  };
  SplitMixRng rng(arrival_seed);
  std::vector<Pending> in_flight;
  std::vector<NodeId> released;
  auto collect = [&](TreeSampler* s) {
    for (const protocols::SegmentTask& r : s->TakeRequests()) {
      if (std::find(released.begin(), released.end(), r.parent_node_id) != released.end()) {
        stats->parents_after_release.push_back(r.parent_node_id);
      }
      const WorkerId w(static_cast<uint32_t>(rng.UniformInt(1, num_workers)));
      for (size_t i = 0; i < r.child_node_ids.size(); ++i) {
        in_flight.push_back({s,
                             FakeDecode(r.child_node_ids[i], r.child_seeds[i],
                                        static_cast<int>(r.max_new_tokens), engine),
                             w});
      }
    }
    for (NodeId n : s->TakeReleasable()) released.push_back(n);
    stats->max_live_plus_leaves = std::max(stats->max_live_plus_leaves, s->pending() + s->leaves());
  };
  for (TreeSampler* s : samplers) collect(s);
  while (!in_flight.empty()) {
    const size_t k = rng.UniformInt(0, static_cast<int64_t>(in_flight.size()) - 1);
    Pending p = std::move(in_flight[k]);
    in_flight.erase(in_flight.begin() + static_cast<int64_t>(k));
    TREEPO_CHECK_OK(p.sampler->OnResult(p.out, p.worker));
    collect(p.sampler);
  }
  stats->released.insert(stats->released.end(), released.begin(), released.end());
}

}  // namespace treepo::scheduler::testing

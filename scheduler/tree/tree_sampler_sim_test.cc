// End-to-end runs of whole queries against the fake engine: exactly w leaves over many seeds
// and option sets, KV release bookkeeping, and determinism whatever the arrival order.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "scheduler/tree/sim_engine_testing.h"
#include "scheduler/tree/tree_sampler.h"

namespace treepo::scheduler {
namespace {

using testing::FakeDetokenize;
using testing::FakeEngineOptions;
using testing::RunSim;
using testing::SimStats;

SamplerOptions RandomOptions(SplitMixRng& rng) {
  SamplerOptions o;
  o.width = static_cast<int>(rng.UniformInt(1, 16));
  o.branch_factor = static_cast<int>(rng.UniformInt(1, std::min(o.width, 4)));
  o.segment_tokens = static_cast<int>(rng.UniformInt(1, 48));
  o.max_depth = static_cast<int>(rng.UniformInt(1, 8));
  o.more_init_divergence = rng.UniformInt(0, 1) == 1;
  o.init_divergence_max = static_cast<int>(rng.UniformInt(o.branch_factor, o.width));
  o.stop.repetition_first = rng.UniformInt(0, 1) == 1;
  o.stop.boxed_only = rng.UniformInt(0, 1) == 1;
  if (rng.UniformInt(0, 2) == 0) {
    o.branching.policy = "logprob_weighted";
    const char* scores[] = {"cumulative", "mean", "last_segment"};
    o.branching.score = scores[rng.UniformInt(0, 2)];
    o.branching.favour_low_prob = rng.UniformInt(0, 1) == 1;
  }
  o.fallback_window_tokens = o.segment_tokens * static_cast<int>(rng.UniformInt(0, 2));
  o.sequential = rng.UniformInt(0, 4) == 0;
  o.sequential_single_segment = o.sequential && rng.UniformInt(0, 1) == 1;
  o.seed = rng.Next();
  return o;
}

SamplerQuery Query(uint64_t id) {
  SamplerQuery q;
  q.id = QueryId(id);
  q.name = "q" + std::to_string(id);
  q.prompt_tokens = {5, 6, 7, 8};
  return q;
}

TEST(TreeSamplerSimTest, ExactlyWidthLeavesOverManySeeds) {
  SplitMixRng rng(12345);
  for (int trial = 0; trial < 400; ++trial) {
    const SamplerOptions o = RandomOptions(rng);
    FakeEngineOptions engine;
    engine.p_eos = 0.002 + 0.1 * (rng.Next() % 100) / 100.0;
    engine.p_box = 0.05 * (rng.Next() % 100) / 100.0;
    engine.p_repeat = 0.1;
    NodeIdAllocator ids;
    std::vector<std::unique_ptr<TreeSampler>> samplers;
    std::vector<TreeSampler*> raw;
    for (uint64_t q = 1; q <= 3; ++q) {
      auto s = TreeSampler::Create(Query(q), o, FakeDetokenize, &ids);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      raw.push_back(s->get());
      samplers.push_back(std::move(s).value());
    }
    SimStats stats;
    RunSim(raw, engine, rng.Next(), 4, &stats);
    EXPECT_TRUE(stats.parents_after_release.empty()) << "trial " << trial;
    EXPECT_LE(stats.max_live_plus_leaves, o.width);
    size_t nodes = 0;
    for (auto& s : samplers) {
      ASSERT_TRUE(s->Done()) << "trial " << trial;
      nodes += s->tree().nodes().size();
      const TreeRecord t = s->TakeTree();
      ASSERT_EQ(static_cast<int>(t.leaves.size()), o.width) << "trial " << trial;
      ASSERT_TRUE(t.Validate().ok()) << t.Validate().ToString();
      for (const TreeLeafRecord& l : t.leaves) {
        EXPECT_LE(l.response_tokens, o.segment_tokens * o.max_depth);
        EXPECT_LE(t.PathTo(l.node).size(), static_cast<size_t>(o.max_depth));
      }
      // Round trip through the file format.
      auto back = TreeRecordFromJson(TreeRecordToJson(t));
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(back->nodes.size(), t.nodes.size());
    }
    std::set<NodeId> released(stats.released.begin(), stats.released.end());
    EXPECT_EQ(released.size(), stats.released.size());  // each once
    EXPECT_EQ(released.size(), nodes);                  // all, once the queries are done
  }
}

// The tree as seen from its leaves, independent of node ids and creation order: per leaf
// (in record order) the texts on its path and its finish reason; then the node count.
std::vector<std::string> Shape(const TreeRecord& t) {
  std::map<uint64_t, const TreeNodeRecord*> by_id;
  for (const TreeNodeRecord& n : t.nodes) by_id[n.id] = &n;
  std::vector<std::string> out;
  for (const TreeLeafRecord& l : t.leaves) {
    std::string s;
    for (uint64_t id : t.PathTo(l.node)) s += by_id.at(id)->text + "/";
    out.push_back(s + std::string(FinishReasonName(l.finish)));
  }
  out.push_back(std::to_string(t.nodes.size()));
  return out;
}

TEST(TreeSamplerSimTest, SameSeedSameTreesWhateverTheArrivalOrder) {
  SplitMixRng rng(777);
  for (int trial = 0; trial < 60; ++trial) {
    const SamplerOptions o = RandomOptions(rng);
    FakeEngineOptions engine;
    engine.p_eos = 0.03;
    engine.p_box = 0.02;
    std::vector<std::vector<std::string>> shapes[2];
    for (int run = 0; run < 2; ++run) {
      NodeIdAllocator ids;
      std::vector<std::unique_ptr<TreeSampler>> samplers;
      std::vector<TreeSampler*> raw;
      // Different numbers of concurrent queries interleave the shared id allocator.
      for (uint64_t q = 1; q <= (run == 0 ? 2u : 5u); ++q) {
        samplers.push_back(
            std::move(TreeSampler::Create(Query(q), o, FakeDetokenize, &ids)).value());
        raw.push_back(samplers.back().get());
      }
      SimStats stats;
      RunSim(raw, engine, /*arrival_seed=*/1000 + run, run == 0 ? 1 : 7, &stats);
      for (size_t q = 0; q < 2; ++q) shapes[run].push_back(Shape(samplers[q]->TakeTree()));
    }
    EXPECT_EQ(shapes[0], shapes[1]) << "trial " << trial;
  }
}

}  // namespace
}  // namespace treepo::scheduler

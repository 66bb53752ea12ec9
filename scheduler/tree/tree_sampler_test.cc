#include "scheduler/tree/tree_sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "scheduler/tree/sim_engine_testing.h"

namespace treepo::scheduler {
namespace {

using testing::FakeDetokenize;
using testing::kBox;
using testing::kEos;

SamplerOptions Opts(int w, int b, int L, int d) {
  SamplerOptions o;
  o.width = w;
  o.branch_factor = b;
  o.segment_tokens = L;
  o.max_depth = d;
  o.seed = 7;
  return o;
}

SamplerQuery Query(uint64_t id) {
  SamplerQuery q;
  q.id = QueryId(id);
  q.name = "q" + std::to_string(id);
  q.prompt_tokens = {5, 6, 7};
  return q;
}

std::unique_ptr<TreeSampler> Make(const SamplerOptions& o, NodeIdAllocator* ids,
                                  uint64_t query = 1) {
  auto s = TreeSampler::Create(Query(query), o, FakeDetokenize, ids);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

const WorkerId kWorker(1);

// A segment of `n` letter tokens, then EOS when `eos`.
protocols::ChildResult Seg(NodeId node, int n, bool eos, bool box = false) {
  protocols::ChildResult o;
  o.node_id = node;
  for (int i = 0; i < n; ++i) o.tokens.push_back(box && i == 0 ? kBox : 2 + i % 10);
  if (eos) {
    o.tokens.push_back(kEos);
    o.finish = protocols::SegmentFinish::kEos;
  }
  o.logprobs.assign(o.tokens.size(), -0.5f);
  return o;
}

std::vector<NodeId> AllChildren(const std::vector<protocols::SegmentTask>& reqs) {
  std::vector<NodeId> out;
  for (const auto& r : reqs)
    out.insert(out.end(), r.child_node_ids.begin(), r.child_node_ids.end());
  return out;
}

TEST(TreeSamplerTest, BudgetDoublesUntilWidthThenPathsContinue) {
  NodeIdAllocator ids;
  auto s = Make(Opts(8, 2, 4, 5), &ids);
  std::vector<size_t> live_per_step;
  for (int step = 0; step < 5; ++step) {
    const auto nodes = AllChildren(s->TakeRequests());
    live_per_step.push_back(nodes.size());
    for (NodeId n : nodes) ASSERT_TRUE(s->OnResult(Seg(n, 4, false), kWorker).ok());
  }
  EXPECT_EQ(live_per_step, (std::vector<size_t>{2, 4, 8, 8, 8}));
  ASSERT_TRUE(s->Done());
  const TreeRecord t = s->TakeTree();
  ASSERT_EQ(t.leaves.size(), 8u);
  for (const auto& l : t.leaves) {
    EXPECT_EQ(l.finish, FinishReason::kMaxTokens);  // rule 4 fires before max depth
    EXPECT_EQ(l.response_tokens, 20);
  }
  EXPECT_TRUE(t.Validate().ok());
}

TEST(TreeSamplerTest, FinishedPathHandsItsBudgetToSurvivors) {
  NodeIdAllocator ids;
  auto s = Make(Opts(8, 2, 4, 6), &ids);
  for (NodeId n : AllChildren(s->TakeRequests()))
    ASSERT_TRUE(s->OnResult(Seg(n, 4, false), kWorker).ok());
  const auto step2 = AllChildren(s->TakeRequests());
  ASSERT_EQ(step2.size(), 4u);
  // One path ends (EOS); A = 3, F = 1, leaves = 1: total = max(3, min(7, 8)) = 7 -> 2, 2, 3.
  ASSERT_TRUE(s->OnResult(Seg(step2[1], 1, true), kWorker).ok());
  for (NodeId n : {step2[3], step2[0], step2[2]})
    ASSERT_TRUE(s->OnResult(Seg(n, 4, false), kWorker).ok());
  const auto reqs = s->TakeRequests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].parent_node_id, step2[0]);
  EXPECT_EQ(reqs[0].child_node_ids.size(), 2u);
  EXPECT_EQ(reqs[1].parent_node_id, step2[2]);
  EXPECT_EQ(reqs[1].child_node_ids.size(), 2u);
  EXPECT_EQ(reqs[2].parent_node_id, step2[3]);
  EXPECT_EQ(reqs[2].child_node_ids.size(), 3u);  // the remainder goes to the last path
  EXPECT_EQ(s->leaves(), 1);
  // Next step: 7 live, 2 finish: A = 5, leaves = 3, total = max(5, min(5, 14)) = 5 -> 1 each.
  const auto step3 = AllChildren(reqs);
  for (size_t i = 0; i < step3.size(); ++i) {
    ASSERT_TRUE(s->OnResult(Seg(step3[i], i < 2 ? 0 : 4, i < 2), kWorker).ok());
  }
  const auto next = s->TakeRequests();
  EXPECT_EQ(AllChildren(next).size(), 5u);
  for (const auto& r : next) EXPECT_EQ(r.child_node_ids.size(), 1u);
}

TEST(TreeSamplerTest, FallbackCutsAtSegmentBoundariesKeepingAncestorIds) {
  std::map<int, int> kept_depths;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    NodeIdAllocator ids;
    SamplerOptions o = Opts(8, 2, 4, 4);
    o.seed = seed;
    auto s = Make(o, &ids);
    const auto step1 = AllChildren(s->TakeRequests());
    for (NodeId n : step1) ASSERT_TRUE(s->OnResult(Seg(n, 4, false), kWorker).ok());
    const auto step2 = AllChildren(s->TakeRequests());
    ASSERT_EQ(step2.size(), 4u);
    // All four end by EOS at response length 4 + 2: n = 2 windows, j in {0, 1}.
    for (NodeId n : step2) ASSERT_TRUE(s->OnResult(Seg(n, 1, true), kWorker).ok());
    EXPECT_EQ(s->leaves(), 4);
    const auto fb = s->TakeRequests();
    int copies = 0;
    for (const protocols::SegmentTask& r : fb) {
      copies += static_cast<int>(r.child_node_ids.size());
      EXPECT_EQ(r.child_node_ids.size(), 2u);  // min(b, remaining)
      if (r.parent_node_id != PromptNode(QueryId(1))) {
        // A true depth-1 ancestor of the EOS leaves; prefix = prompt + its 4 tokens.
        EXPECT_TRUE(r.parent_node_id == step1[0] || r.parent_node_id == step1[1]);
        EXPECT_EQ(r.prefix_tokens.size(), 3u + 4u);
        EXPECT_EQ(s->tree().at(r.child_node_ids[0]).depth, 2);
        ++kept_depths[1];
      } else {
        EXPECT_EQ(r.prefix_tokens.size(), 3u);
        ++kept_depths[0];
      }
    }
    EXPECT_EQ(copies, 4);
    EXPECT_TRUE(s->TakeReleasable().size() >= 4u);  // the EOS leaf nodes themselves
  }
  EXPECT_GT(kept_depths[0], 0);
  EXPECT_GT(kept_depths[1], 0);
}

TEST(TreeSamplerTest, FallbackWithoutFinishedLeavesRestartsFromPrompt) {
  NodeIdAllocator ids;
  SamplerOptions o = Opts(4, 2, 40, 3);
  auto s = Make(o, &ids);
  for (NodeId n : AllChildren(s->TakeRequests())) {
    protocols::ChildResult out = Seg(n, 40, false);
    std::fill(out.tokens.begin(), out.tokens.end(), 2);  // 40 x 'a': repetition
    ASSERT_TRUE(s->OnResult(out, kWorker).ok());
  }
  EXPECT_EQ(s->leaves(), 2);
  const auto fb = s->TakeRequests();
  ASSERT_EQ(fb.size(), 1u);
  EXPECT_EQ(fb[0].parent_node_id, PromptNode(QueryId(1)));  // a refill forks the prompt node
  EXPECT_EQ(fb[0].child_node_ids.size(), 2u);
}

TEST(TreeSamplerTest, BoxedAndEosFinishesBoxedAloneContinues) {
  NodeIdAllocator ids;
  auto s = Make(Opts(2, 2, 4, 4), &ids);
  const auto nodes = AllChildren(s->TakeRequests());
  ASSERT_TRUE(s->OnResult(Seg(nodes[0], 3, true, /*box=*/true), kWorker).ok());
  ASSERT_TRUE(s->OnResult(Seg(nodes[1], 4, false, /*box=*/true), kWorker).ok());
  EXPECT_EQ(s->tree().at(nodes[0]).finish, FinishReason::kFinished);
  EXPECT_EQ(s->tree().at(nodes[1]).finish, FinishReason::kNone);
  EXPECT_EQ(AllChildren(s->TakeRequests()).size(), 1u);
}

TEST(TreeSamplerTest, RejectsMalformedResults) {
  NodeIdAllocator ids;
  auto s = Make(Opts(2, 2, 4, 4), &ids);
  const auto nodes = AllChildren(s->TakeRequests());
  EXPECT_EQ(s->OnResult(Seg(nodes[0], 3, false), kWorker).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->OnResult(Seg(nodes[0], 5, false), kWorker).code(), StatusCode::kInvalidArgument);
  protocols::ChildResult bad = Seg(nodes[0], 4, false);
  bad.logprobs.pop_back();
  EXPECT_EQ(s->OnResult(bad, kWorker).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s->OnResult(Seg(NodeId(999), 4, false), kWorker).code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(s->OnResult(Seg(nodes[0], 4, false), kWorker).ok());
  EXPECT_EQ(s->OnResult(Seg(nodes[0], 4, false), kWorker).code(), StatusCode::kFailedPrecondition);
}

TEST(TreeSamplerTest, MoreInitialDivergenceDrawsKInRange) {
  SamplerOptions o = Opts(8, 2, 4, 4);
  o.more_init_divergence = true;
  o.init_divergence_max = 6;
  std::set<size_t> seen;
  for (uint64_t q = 1; q <= 200; ++q) {
    NodeIdAllocator ids;
    auto s = Make(o, &ids, q);
    const auto reqs = s->TakeRequests();
    ASSERT_EQ(reqs.size(), 1u);
    seen.insert(reqs[0].child_node_ids.size());
  }
  EXPECT_EQ(seen, (std::set<size_t>{2, 3, 4, 5, 6}));
  o.init_divergence_max = 9;
  NodeIdAllocator ids;
  EXPECT_EQ(TreeSampler::Create(Query(1), o, FakeDetokenize, &ids).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(TreeSamplerTest, SequentialModeMakesIndependentChains) {
  NodeIdAllocator ids;
  SamplerOptions o = Opts(4, 2, 4, 3);
  o.sequential = true;
  auto s = Make(o, &ids);
  auto reqs = s->TakeRequests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].child_node_ids.size(), 4u);
  const auto roots = reqs[0].child_node_ids;
  // Path 0 ends at once; path 1 goes on without waiting for the others.
  ASSERT_TRUE(s->OnResult(Seg(roots[0], 1, true), kWorker).ok());
  ASSERT_TRUE(s->OnResult(Seg(roots[1], 4, false), kWorker).ok());
  reqs = s->TakeRequests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].parent_node_id, roots[1]);
  EXPECT_EQ(reqs[0].child_node_ids.size(), 1u);

  SamplerOptions one = o;
  one.sequential_single_segment = true;
  auto s1 = Make(one, &ids, 2);
  EXPECT_EQ(s1->TakeRequests()[0].max_new_tokens, 12);
}

// Sequential mode processes each result on arrival; a node's id (its sampling stream on the
// worker) must still follow from its sample and depth alone.
TEST(TreeSamplerTest, SequentialModeNodeIdsDoNotDependOnArrivalOrder) {
  SamplerOptions o = Opts(4, 2, 4, 3);
  o.sequential = true;
  std::vector<TreeRecord> trees;
  for (bool reverse : {false, true}) {
    NodeIdAllocator ids;
    auto s = Make(o, &ids);
    std::vector<NodeId> live = AllChildren(s->TakeRequests());
    std::map<NodeId, int> sample;
    for (int i = 0; i < 4; ++i) sample[live[i]] = i;
    while (!live.empty()) {
      if (reverse) std::reverse(live.begin(), live.end());
      std::vector<NodeId> next;
      for (NodeId n : live) {
        const int i = sample.at(n);
        // Sample 0 ends with EOS at depth 2; the others run to the depth cap.
        const bool eos = i == 0 && s->tree().at(n).depth == 2;
        ASSERT_TRUE(s->OnResult(Seg(n, eos ? 1 : 4, eos), kWorker).ok());
        for (const protocols::SegmentTask& r : s->TakeRequests()) {
          for (NodeId c : r.child_node_ids) {
            sample[c] = i;
            next.push_back(c);
          }
        }
      }
      live = next;
    }
    ASSERT_TRUE(s->Done());
    trees.push_back(s->TakeTree());
  }
  ASSERT_EQ(trees[0].nodes.size(), trees[1].nodes.size());
  for (size_t i = 0; i < trees[0].nodes.size(); ++i) {
    EXPECT_EQ(trees[0].nodes[i].id, trees[1].nodes[i].id) << i;
    EXPECT_EQ(trees[0].nodes[i].parent, trees[1].nodes[i].parent) << i;
    EXPECT_EQ(trees[0].nodes[i].tokens, trees[1].nodes[i].tokens) << i;
  }
  ASSERT_EQ(trees[0].leaves.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(trees[0].leaves[i].node, trees[1].leaves[i].node);
}

TEST(TreeSamplerTest, ReleasesEverythingWhenDone) {
  NodeIdAllocator ids;
  auto s = Make(Opts(2, 2, 4, 2), &ids);
  std::set<NodeId> released;
  for (int step = 0; step < 2; ++step) {
    for (NodeId n : AllChildren(s->TakeRequests()))
      ASSERT_TRUE(s->OnResult(Seg(n, 4, false), kWorker).ok());
    for (NodeId n : s->TakeReleasable()) EXPECT_TRUE(released.insert(n).second);
  }
  ASSERT_TRUE(s->Done());
  EXPECT_EQ(released.size(), s->tree().nodes().size());
}

TEST(TreeSamplerTest, UnknownPolicyNamesAreListed) {
  NodeIdAllocator ids;
  SamplerOptions o = Opts(4, 2, 4, 4);
  o.branching.policy = "nope";
  auto r = TreeSampler::Create(Query(1), o, FakeDetokenize, &ids);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("fixed_avg, logprob_weighted"), std::string::npos);
  o.branching.policy = "fixed_avg";
  o.fallback_policy = "breadth";
  r = TreeSampler::Create(Query(1), o, FakeDetokenize, &ids);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("depth_first"), std::string::npos);
}

// Sizes far past any useful run are refused at Validate() with the bound, before a sampler
// allocates per-leaf state (width=1000000000 used to eat gigabytes before bad_alloc).
TEST(TreeSamplerTest, ValidateBoundsTreeSizes) {
  SamplerOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.width = 1000000000;
  Status s = o.Validate();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("width (w) must be in [1, 65536]"), std::string::npos) << s.message();
  o = SamplerOptions();
  o.segment_tokens = 1 << 20;
  EXPECT_FALSE(o.Validate().ok());
  o = SamplerOptions();
  o.max_depth = 1 << 13;
  EXPECT_FALSE(o.Validate().ok());
  o = SamplerOptions();
  o.segment_tokens = 4096;
  o.max_depth = 4096;  // d * L = 2^24 tokens
  EXPECT_FALSE(o.Validate().ok());
}

}  // namespace
}  // namespace treepo::scheduler

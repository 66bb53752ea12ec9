// Engine on random weights: fork == from scratch, batch independence, copy-on-write safety,
// clean page exhaustion, error codes.
#include "worker/engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

namespace treepo::worker {
namespace {

model::ModelConfig SmallConfig() {
  model::ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 96;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 97;
  c.max_seq_len = 256;
  return c;
}

std::shared_ptr<const model::ModelWeights> RandomWeights(uint64_t seed = 7) {
  auto w = model::ModelWeights::Random(SmallConfig(), seed);
  EXPECT_TRUE(w.ok());
  // Larger weights than the default init, so that logits differ visibly between tokens.
  for (float& x : w->data) x *= 4.0f;
  return std::make_shared<const model::ModelWeights>(std::move(w).value());
}

std::unique_ptr<Engine> MakeEngine(std::shared_ptr<const model::ModelWeights> w, int pages = 256,
                                   int page_size = 16, int max_step_tokens = 512) {
  EngineOptions o;
  o.kv.num_pages = pages;
  o.kv.page_size = page_size;
  o.max_step_tokens = max_step_tokens;
  auto e = Engine::Create(std::move(w), WeightVersion(1), o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(e).value();
}

std::vector<int32_t> RandomTokens(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % 90) + 3;
  return t;
}

SegmentRequest Request(uint64_t task, std::optional<NodeId> parent, std::vector<int32_t> prefix,
                       std::vector<NodeId> children, int max_new, float temperature) {
  SegmentRequest r;
  r.task = TaskId(task);
  r.parent = parent;
  r.prefix_tokens = std::move(prefix);
  r.children = std::move(children);
  for (size_t i = 0; i < r.children.size(); ++i) r.seeds.push_back(1000 + 17 * i + task);
  r.max_new_tokens = max_new;
  r.sampling.temperature = temperature;
  r.sampling.stop_at_eos = false;
  r.weight_version = WeightVersion(1);
  return r;
}

const SegmentResult& Find(const std::vector<SegmentResult>& rs, uint64_t task) {
  for (const auto& r : rs) {
    if (r.task == TaskId(task)) return r;
  }
  ADD_FAILURE() << "no result for task " << task;
  return rs.front();
}

// max |a - b| over rows, divided by max |b| of the row.
float MaxRowRelDiff(const std::vector<float>& a, const std::vector<float>& b, int vocab) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0.0f;
  for (size_t r = 0; r * vocab < std::min(a.size(), b.size()); ++r) {
    float diff = 0.0f, scale = 1e-30f;
    for (int i = 0; i < vocab; ++i) {
      diff = std::max(diff, std::abs(a[r * vocab + i] - b[r * vocab + i]));
      scale = std::max(scale, std::abs(b[r * vocab + i]));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

TEST(EngineTest, ForkedChildEqualsFromScratchRun) {
  auto w = RandomWeights();
  auto e = MakeEngine(w);
  const auto prefix = RandomTokens(21, 1);
  ASSERT_TRUE(e->Submit(Request(1, NodeId(1), prefix, {NodeId(10)}, 7, 0.0f)).ok());
  auto r1 = e->RunUntilIdle();
  ASSERT_EQ(r1.size(), 1u);
  const auto& first = r1[0].children[0].tokens;
  ASSERT_EQ(first.size(), 7u);
  auto fork = Request(2, NodeId(10), {}, {NodeId(11), NodeId(12)}, 9, 0.0f);
  fork.return_logits = true;
  ASSERT_TRUE(e->Submit(fork).ok());
  auto r2 = e->RunUntilIdle();

  std::vector<int32_t> path = prefix;
  path.insert(path.end(), first.begin(), first.end());
  auto scratch = Request(3, NodeId(20), path, {NodeId(21)}, 9, 0.0f);
  scratch.return_logits = true;
  ASSERT_TRUE(e->Submit(scratch).ok());
  auto r3 = e->RunUntilIdle();
  EXPECT_EQ(r3[0].prefilled_tokens, 27);
  EXPECT_EQ(r2[0].prefilled_tokens, 0);
  for (int c = 0; c < 2; ++c) {
    EXPECT_EQ(r2[0].children[c].tokens, r3[0].children[0].tokens);
    EXPECT_LT(MaxRowRelDiff(r2[0].children[c].logits, r3[0].children[0].logits, 97), 1e-5f);
  }
  for (uint64_t n : {1, 10, 11, 12, 20, 21}) ASSERT_TRUE(e->Release(NodeId(n)).ok());
  EXPECT_EQ(e->Load().pages.used, 0);
  EXPECT_EQ(e->Load().held_nodes, 0);
}

TEST(EngineTest, NodeTokensDoNotDependOnTheBatch) {
  auto w = RandomWeights();
  auto make_task = [](uint64_t id) {
    auto r = Request(id, NodeId(id * 100), RandomTokens(37, 5),
                     {NodeId(id * 100 + 1), NodeId(id * 100 + 2), NodeId(id * 100 + 3)}, 25, 0.9f);
    r.sampling.top_p = 0.95f;
    r.sampling.top_k = 40;
    return r;
  };
  auto alone = MakeEngine(w);
  ASSERT_TRUE(alone->Submit(make_task(1)).ok());
  auto a = alone->RunUntilIdle();

  auto busy = MakeEngine(w, 512, 16, /*max_step_tokens=*/11);  // chunked prefill
  std::mt19937_64 rng(3);
  for (uint64_t t = 2; t < 6; ++t) {
    ASSERT_TRUE(
        busy->Submit(Request(t, std::nullopt, RandomTokens(5 + rng() % 30, t),
                             {NodeId(t * 100 + 1), NodeId(t * 100 + 2)}, 3 + rng() % 40, 1.0f))
            .ok());
  }
  busy->Step();
  busy->Step();
  ASSERT_TRUE(busy->Submit(make_task(1)).ok());
  auto b = busy->RunUntilIdle();
  const auto& ra = Find(a, 1);
  const auto& rb = Find(b, 1);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(ra.children[c].tokens, rb.children[c].tokens) << "child " << c;
    for (size_t i = 0; i < ra.children[c].logprobs.size(); ++i) {
      EXPECT_NEAR(ra.children[c].logprobs[i], rb.children[c].logprobs[i], 1e-4);
    }
  }
  // Different seeds give different children.
  EXPECT_NE(ra.children[0].tokens, ra.children[1].tokens);
}

TEST(EngineTest, ChildrenNeverWriteSharedPages) {
  auto w = RandomWeights();
  auto e = MakeEngine(w, 64, /*page_size=*/4);
  ASSERT_TRUE(e->Submit(Request(1, NodeId(1), RandomTokens(11, 2), {NodeId(2)}, 1, 0.0f)).ok());
  e->RunUntilIdle();
  ASSERT_TRUE(e->Release(NodeId(2)).ok());
  const KvCache& kv = e->kv_cache();
  const auto parent_pages =
      std::vector<int32_t>(kv.BlockTable(NodeId(1)).begin(), kv.BlockTable(NodeId(1)).end());
  ASSERT_EQ(parent_pages.size(), 3u);  // 10 positions: 4 + 4 + 2
  auto snapshot = [&] {
    std::vector<float> s;
    for (int32_t p : parent_pages) {
      std::vector<float> page(kv.PageFloats());
      kv.ReadPage(p, page.data());
      s.insert(s.end(), page.begin(), page.end());
    }
    return s;
  };
  const auto before = snapshot();
  ASSERT_TRUE(
      e->Submit(Request(2, NodeId(1), {}, {NodeId(3), NodeId(4), NodeId(5), NodeId(6)}, 20, 1.0f))
          .ok());
  EXPECT_EQ(e->Load().pages.shared, 2);
  while (!e->Idle()) {
    e->Step();
    EXPECT_EQ(snapshot(), before);
  }
  for (uint64_t n : {3, 4, 5, 6}) {
    EXPECT_EQ(e->kv_cache().Length(NodeId(n)), 30);
    ASSERT_TRUE(e->Release(NodeId(n)).ok());
  }
  EXPECT_EQ(e->Load().pages.shared, 0);
  EXPECT_EQ(snapshot(), before);
  ASSERT_TRUE(e->Release(NodeId(1)).ok());
  EXPECT_EQ(e->Load().pages.used, 0);
}

TEST(EngineTest, RunningOutOfPagesIsClean) {
  auto e = MakeEngine(RandomWeights(), /*pages=*/8, /*page_size=*/4);
  // 11-token prefix: 3 pages for the parent, then 2 children * (ceil(30/4) - 2) = 12 pages.
  auto big = Request(1, NodeId(1), RandomTokens(11, 4), {NodeId(2), NodeId(3)}, 20, 1.0f);
  const EngineLoad before = e->Load();
  Status st = e->Submit(big);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_EQ(e->Load().pages.free, 8);
  EXPECT_EQ(e->Load().held_nodes, before.held_nodes);
  EXPECT_TRUE(e->Idle());
  EXPECT_FALSE(e->Holds(NodeId(1)));

  ASSERT_TRUE(e->Submit(Request(2, NodeId(1), RandomTokens(11, 4), {NodeId(2)}, 5, 1.0f)).ok());
  EXPECT_EQ(e->Load().pages.used, 3 + 2);
  EXPECT_EQ(e->Submit(Request(3, std::nullopt, RandomTokens(20, 4), {NodeId(9)}, 5, 1.0f)).code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(e->Load().pages.used, 5);
  auto r = e->RunUntilIdle();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].children[0].tokens.size(), 5u);
  ASSERT_TRUE(e->Release(NodeId(1)).ok());
  ASSERT_TRUE(e->Release(NodeId(2)).ok());
  EXPECT_EQ(e->Load().pages.free, 8);
}

TEST(EngineTest, EosFinishesEarlyAndReturnsPages) {
  model::ModelConfig c = SmallConfig();
  c.eos_id = 0;  // zero weights: all logits equal, greedy picks token 0
  auto w = model::ModelWeights::Zeros(c);
  ASSERT_TRUE(w.ok());
  auto e = MakeEngine(std::make_shared<const model::ModelWeights>(std::move(w).value()), 32, 4);
  auto req = Request(1, std::nullopt, {1, 5, 6}, {NodeId(2), NodeId(3)}, 40, 0.0f);
  req.sampling.stop_at_eos = true;
  req.keep_kv = false;
  ASSERT_TRUE(e->Submit(req).ok());
  auto r = e->RunUntilIdle();
  ASSERT_EQ(r.size(), 1u);
  for (const auto& child : r[0].children) {
    EXPECT_EQ(child.tokens, std::vector<int32_t>{0});
    EXPECT_EQ(child.finish, FinishReason::kEos);
    EXPECT_NEAR(child.logprobs[0], -std::log(97.0f), 1e-5);
  }
  EXPECT_EQ(e->Load().pages.used, 0);
  EXPECT_EQ(e->Load().held_nodes, 0);
}

TEST(EngineTest, ErrorsChangeNothing) {
  auto w = RandomWeights();
  auto e = MakeEngine(w);
  auto ok = Request(1, NodeId(1), RandomTokens(9, 1), {NodeId(2)}, 4, 1.0f);
  auto bad = ok;
  bad.children.clear();
  EXPECT_EQ(e->Submit(bad).code(), StatusCode::kInvalidArgument);
  bad = ok;
  bad.seeds.push_back(3);
  EXPECT_EQ(e->Submit(bad).code(), StatusCode::kInvalidArgument);
  bad = ok;
  bad.prefix_tokens[2] = 97;
  EXPECT_EQ(e->Submit(bad).code(), StatusCode::kInvalidArgument);
  bad = ok;
  bad.max_new_tokens = 300;
  EXPECT_EQ(e->Submit(bad).code(), StatusCode::kInvalidArgument);
  bad = ok;
  bad.sampling.top_p = 0.0f;
  EXPECT_EQ(e->Submit(bad).code(), StatusCode::kInvalidArgument);
  bad = ok;
  bad.prefix_tokens.clear();
  EXPECT_EQ(e->Submit(bad).code(), StatusCode::kNotFound);
  bad = ok;
  bad.weight_version = WeightVersion(2);
  EXPECT_EQ(e->Submit(bad).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(e->Load().pages.used, 0);
  EXPECT_TRUE(e->Idle());

  ASSERT_TRUE(e->Submit(ok).ok());
  EXPECT_EQ(e->Submit(Request(2, NodeId(1), {}, {NodeId(3)}, 4, 1.0f)).code(),
            StatusCode::kFailedPrecondition);  // parent still prefilling
  EXPECT_EQ(e->Submit(Request(5, NodeId(2), {}, {NodeId(3)}, 4, 1.0f)).code(),
            StatusCode::kFailedPrecondition);  // parent still decoding
  EXPECT_EQ(e->Submit(Request(3, NodeId(5), {1}, {NodeId(2)}, 4, 1.0f)).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(e->Release(NodeId(2)).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(e->Release(NodeId(77)).code(), StatusCode::kNotFound);
  EXPECT_EQ(e->SwapWeights(RandomWeights(8), WeightVersion(2)).code(),
            StatusCode::kFailedPrecondition);
  e->RunUntilIdle();
  EXPECT_TRUE(e->Holds(NodeId(1)));
  EXPECT_TRUE(e->Holds(NodeId(2)));

  ASSERT_TRUE(e->SwapWeights(RandomWeights(8), WeightVersion(2)).ok());
  EXPECT_EQ(e->weight_version(), WeightVersion(2));
  auto stale = Request(4, NodeId(2), {}, {NodeId(6)}, 4, 1.0f);
  stale.weight_version = WeightVersion(2);
  EXPECT_EQ(e->Submit(stale).code(), StatusCode::kFailedPrecondition);  // KV of version 1
  ASSERT_TRUE(e->Release(NodeId(1)).ok());
  ASSERT_TRUE(e->Release(NodeId(2)).ok());
  EXPECT_EQ(e->Load().pages.used, 0);
}

TEST(SamplerTest, TruncationAndLogprobs) {
  Sampler s;
  const float logits[5] = {1.0f, 3.0f, 2.0f, -1.0f, 0.5f};
  auto rng = NodeRng(1, NodeId(1));
  SamplingParams greedy{0.0f, 0, 1.0f, true};
  Sample g = s.Draw(logits, 5, greedy, &rng);
  EXPECT_EQ(g.token, 1);
  double z = 0;
  for (float l : logits) z += std::exp(l - 3.0);
  EXPECT_NEAR(g.logprob, -std::log(z), 1e-6);
  SamplingParams top1{1.0f, 1, 1.0f, true};
  SamplingParams tiny_p{1.0f, 0, 0.01f, true};
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(s.Draw(logits, 5, top1, &rng).token, 1);
    EXPECT_EQ(s.Draw(logits, 5, tiny_p, &rng).token, 1);
  }
  SamplingParams top2{2.0f, 2, 1.0f, true};
  int counts[5] = {};
  for (int i = 0; i < 20000; ++i) ++counts[s.Draw(logits, 5, top2, &rng).token];
  EXPECT_EQ(counts[0] + counts[3] + counts[4], 0);
  // Within top-2 at T=2: p(1) = 1 / (1 + exp(-0.5)) = 0.6225.
  EXPECT_NEAR(counts[1] / 20000.0, 0.6225, 0.02);
  Sample t = s.Draw(logits, 5, top2, &rng);
  double z2 = 0;
  for (float l : logits) z2 += std::exp((l - 3.0) / 2.0);
  EXPECT_NEAR(t.logprob, (logits[t.token] - 3.0) / 2.0 - std::log(z2), 1e-5);
}

}  // namespace
}  // namespace treepo::worker

namespace treepo::worker {
namespace {

// Subtree migration: nodes exported from one engine and imported into another continue
// bitwise as they would have where they were computed, pages they share stay shared, and a
// bad import changes nothing.
TEST(EngineMigrationTest, ImportedNodesContinueBitwiseAndKeepTheirSharing) {
  auto w = RandomWeights();
  auto src = MakeEngine(w, 64, 4);
  auto dst = MakeEngine(w, 64, 4);
  // A prompt node of 9 positions (prefilled) with two children of 6 tokens each: the children
  // share the prompt's two full pages.
  ASSERT_TRUE(
      src->Submit(Request(1, NodeId(5), RandomTokens(10, 3), {NodeId(6), NodeId(7)}, 6, 1.0f))
          .ok());
  src->RunUntilIdle();
  const int free_before = dst->kv_cache().pool().num_free();
  Result<KvExport> kv = src->ExportNodes(std::vector<NodeId>{NodeId(5), NodeId(6), NodeId(7)});
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  // 9 positions: 3 pages; each child (15 positions): 2 shared + 2 of its own.
  EXPECT_EQ(kv->n_pages, 3 + 2 + 2);
  ASSERT_TRUE(dst->ImportNodes(*kv).ok());
  EXPECT_EQ(dst->kv_cache().pool().num_free(), free_before - 7);
  EXPECT_TRUE(dst->Holds(NodeId(6)));
  EXPECT_EQ(dst->kv_cache().Length(NodeId(6)), src->kv_cache().Length(NodeId(6)));
  // Importing again: the nodes are held already; nothing changes.
  EXPECT_EQ(dst->ImportNodes(*kv).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(dst->kv_cache().pool().num_free(), free_before - 7);

  // The same continuation on both engines: bitwise equal tokens and log-probs.
  for (Engine* e : {src.get(), dst.get()}) {
    SegmentRequest r = Request(2, NodeId(6), {}, {NodeId(10), NodeId(11)}, 8, 1.0f);
    r.return_logits = true;
    ASSERT_TRUE(e->Submit(r).ok());
    ASSERT_TRUE(e->Submit(Request(3, NodeId(5), {}, {NodeId(12)}, 8, 1.0f)).ok());
  }
  const auto a = src->RunUntilIdle();
  const auto b = dst->RunUntilIdle();
  for (uint64_t task : {2, 3}) {
    const SegmentResult &x = Find(a, task), &y = Find(b, task);
    ASSERT_EQ(x.children.size(), y.children.size());
    for (size_t i = 0; i < x.children.size(); ++i) {
      EXPECT_EQ(x.children[i].tokens, y.children[i].tokens);
      EXPECT_EQ(0, std::memcmp(x.children[i].logprobs.data(), y.children[i].logprobs.data(),
                               x.children[i].logprobs.size() * sizeof(float)));
      EXPECT_EQ(x.children[i].logits, y.children[i].logits);
    }
  }

  // Malformed exports are refused before anything is taken.
  const int free_now = dst->kv_cache().pool().num_free();
  KvExport bad = *kv;
  for (auto& n : bad.nodes) n.node = NodeId(n.node.value() + 100);
  bad.nodes[0].pages.push_back(99);
  EXPECT_EQ(dst->ImportNodes(bad).code(), StatusCode::kInvalidArgument);
  bad = *kv;
  bad.page_size = 16;
  EXPECT_EQ(dst->ImportNodes(bad).code(), StatusCode::kInvalidArgument);
  bad = *kv;
  for (auto& n : bad.nodes) n.node = NodeId(n.node.value() + 100);
  auto tiny = MakeEngine(w, 4, 4);
  EXPECT_EQ(tiny->ImportNodes(bad).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(dst->kv_cache().pool().num_free(), free_now);
  // Only idle held nodes can be exported.
  EXPECT_EQ(src->ExportNodes(std::vector<NodeId>{NodeId(77)}).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace treepo::worker

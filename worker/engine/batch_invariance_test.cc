// Batch invariance of the engine, bitwise: one child's logits, tokens and log-probs are the
// same when it runs alone, among 1..63 other random sequences at random positions, with its
// prefix prefilled in one chunk, in several, decoded token by token or forked from a held
// node, with any page size, and with 1, 2 or 3 threads. This is what makes a rollout's trees
// independent of the number of workers and of placement.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "worker/engine/engine.h"

namespace treepo::worker {
namespace {

// Sizes that are not multiples of the kernels' 8-wide lanes or 3 x 4 tiles, large enough
// that the matrix products and attention split across threads at batch 64.
model::ModelConfig Config() {
  model::ModelConfig c;
  c.dim = 260;
  c.hidden_dim = 300;
  c.n_layers = 2;
  c.n_heads = 10;
  c.n_kv_heads = 5;
  c.vocab_size = 1001;
  c.max_seq_len = 512;
  return c;
}

std::shared_ptr<const model::ModelWeights> Weights() {
  static const std::shared_ptr<const model::ModelWeights> w = [] {
    auto r = model::ModelWeights::Random(Config(), 11);
    EXPECT_TRUE(r.ok());
    for (float& x : r->data) x *= 4.0f;  // visible differences between tokens
    return std::make_shared<const model::ModelWeights>(std::move(r).value());
  }();
  return w;
}

struct EngineSetup {
  int page_size = 16;
  int max_step_tokens = 512;
  int threads = 1;
};

std::unique_ptr<Engine> MakeEngine(const EngineSetup& s) {
  EngineOptions o;
  o.kv.num_pages = 4096 / s.page_size * 16;
  o.kv.page_size = s.page_size;
  o.max_step_tokens = s.max_step_tokens;
  o.blas_threads = s.threads;
  auto e = Engine::Create(Weights(), WeightVersion(1), o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(e).value();
}

std::vector<int32_t> RandomTokens(int n, std::mt19937_64& rng) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % 990) + 3;
  return t;
}

SegmentRequest Request(uint64_t task, std::optional<NodeId> parent, std::vector<int32_t> prefix,
                       NodeId child, uint64_t seed, int max_new, float temperature) {
  SegmentRequest r;
  r.task = TaskId(task);
  r.parent = parent;
  r.prefix_tokens = std::move(prefix);
  r.children = {child};
  r.seeds = {seed};
  r.max_new_tokens = max_new;
  r.sampling.temperature = temperature;
  r.sampling.stop_at_eos = false;
  r.weight_version = WeightVersion(1);
  r.return_logits = true;
  return r;
}

constexpr uint64_t kTargetTask = 1;
constexpr NodeId kTargetChild(7);
constexpr uint64_t kTargetSeed = 99;
constexpr int kTargetTokens = 12;

// The target: continue `parent` (or a prefix) with child 7, 12 tokens at temperature 1.
SegmentRequest Target(std::optional<NodeId> parent, std::vector<int32_t> prefix) {
  return Request(kTargetTask, parent, std::move(prefix), kTargetChild, kTargetSeed, kTargetTokens,
                 1.0f);
}

std::vector<SegmentResult> RunAll(Engine& e) {
  std::vector<SegmentResult> out;
  for (int i = 0; i < 100000 && !e.Idle(); ++i) {
    for (SegmentResult& r : e.Step()) out.push_back(std::move(r));
  }
  EXPECT_TRUE(e.Idle());
  return out;
}

const SegmentResult* FindTask(const std::vector<SegmentResult>& rs, uint64_t task) {
  for (const SegmentResult& r : rs) {
    if (r.task == TaskId(task)) return &r;
  }
  ADD_FAILURE() << "no result for task " << task;
  return nullptr;
}

bool BitwiseEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Number of elements that differ bitwise, for failure messages.
size_t Differing(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

void ExpectSameChild(const ChildResult& want, const ChildResult& got, const std::string& what) {
  EXPECT_EQ(want.tokens, got.tokens) << what;
  EXPECT_TRUE(BitwiseEqual(want.logprobs, got.logprobs)) << what;
  EXPECT_TRUE(BitwiseEqual(want.logits, got.logits))
      << what << ": " << Differing(want.logits, got.logits) << " of " << want.logits.size()
      << " logits differ";
}

class BatchInvarianceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(1);
    prompt_ = RandomTokens(10, rng);
    // The decoded part of the prefix: 30 tokens sampled after the prompt.
    auto e = MakeEngine({});
    ASSERT_TRUE(e->Submit(Request(2, NodeId(50), prompt_, NodeId(51), 5, 30, 1.0f)).ok());
    auto rs = RunAll(*e);
    ASSERT_EQ(rs.size(), 1u);
    decoded_ = rs[0].children[0];
    prefix_ = prompt_;
    prefix_.insert(prefix_.end(), decoded_.tokens.begin(), decoded_.tokens.end());
    // The reference: the whole prefix prefilled in one chunk, the target alone, one thread.
    auto ref = MakeEngine({});
    ASSERT_TRUE(ref->Submit(Target(NodeId(1), prefix_)).ok());
    auto r = RunAll(*ref);
    ASSERT_EQ(r.size(), 1u);
    reference_ = r[0];
    ASSERT_EQ(reference_.prefilled_tokens, static_cast<int>(prefix_.size()) - 1);
  }

  std::vector<int32_t> prompt_, prefix_;
  ChildResult decoded_;
  SegmentResult reference_;
};

TEST_F(BatchInvarianceTest, PrefilledInChunksEqualsOneChunk) {
  for (int chunk : {1, 3, 8, 17}) {
    auto e = MakeEngine({.page_size = 16, .max_step_tokens = chunk});
    ASSERT_TRUE(e->Submit(Target(NodeId(1), prefix_)).ok());
    auto r = RunAll(*e);
    ASSERT_EQ(r.size(), 1u);
    ExpectSameChild(reference_.children[0], r[0].children[0], "chunk " + std::to_string(chunk));
    EXPECT_TRUE(BitwiseEqual(reference_.prefix_logits, r[0].prefix_logits)) << "chunk " << chunk;
  }
}

// The prefix's last 30 tokens were decoded one by one (and their logits returned then): they
// equal the prefilled prefix's logits, and forking the decoded node equals prefilling it.
TEST_F(BatchInvarianceTest, DecodedPrefixEqualsPrefilledPrefix) {
  const int vocab = Config().vocab_size;
  // Decoded token j was sampled from the row of prefix position (prompt - 1 + j).
  const size_t first_row = prompt_.size() - 1;
  ASSERT_EQ(reference_.prefix_logits.size(), (prefix_.size() - 1) * vocab);
  const std::vector<float> prefilled(reference_.prefix_logits.begin() + first_row * vocab,
                                     reference_.prefix_logits.end());
  EXPECT_TRUE(BitwiseEqual(decoded_.logits, prefilled))
      << Differing(decoded_.logits, prefilled) << " differ";

  auto e = MakeEngine({.page_size = 4});
  ASSERT_TRUE(e->Submit(Request(2, NodeId(50), prompt_, NodeId(51), 5, 30, 1.0f)).ok());
  RunAll(*e);
  ASSERT_TRUE(e->Submit(Target(NodeId(51), {})).ok());
  auto r = RunAll(*e);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].prefilled_tokens, 0);
  ExpectSameChild(reference_.children[0], r[0].children[0], "forked decoded node");
}

TEST_F(BatchInvarianceTest, ForkedFromAHeldNodeEqualsPrefilled) {
  auto e = MakeEngine({.page_size = 8, .max_step_tokens = 5});
  ASSERT_TRUE(e->Submit(Request(3, NodeId(60), prefix_, NodeId(61), 8, 4, 1.0f)).ok());
  RunAll(*e);
  ASSERT_TRUE(e->Holds(NodeId(60)));
  ASSERT_TRUE(e->Submit(Target(NodeId(60), {})).ok());
  auto r = RunAll(*e);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].prefilled_tokens, 0);
  ExpectSameChild(reference_.children[0], r[0].children[0], "forked");
}

// Batches of 2..64 sequences: random other tasks (random prefixes, lengths, temperatures),
// submitted before and after the target, some already decoding when it arrives; random page
// sizes, step budgets (so chunking of every prefill varies) and thread counts.
TEST_F(BatchInvarianceTest, SameLogitsInAnyBatch) {
  std::mt19937_64 rng(2026);
  for (int batch : {2, 3, 5, 8, 13, 32, 64}) {
    for (int trial = 0; trial < 2; ++trial) {
      EngineSetup s;
      s.page_size = std::vector<int>{4, 16, 32}[rng() % 3];
      s.max_step_tokens = std::vector<int>{7, 64, 512}[rng() % 3];
      s.threads = 1 + static_cast<int>(rng() % 3);
      const std::string what = "batch " + std::to_string(batch) + " trial " +
                               std::to_string(trial) + " page " + std::to_string(s.page_size) +
                               " step " + std::to_string(s.max_step_tokens) + " threads " +
                               std::to_string(s.threads);
      auto e = MakeEngine(s);
      const int others = batch - 1;
      const int before = static_cast<int>(rng() % (others + 1));
      auto submit_other = [&](int i) {
        const uint64_t task = 100 + i;
        ASSERT_TRUE(
            e->Submit(Request(task, std::nullopt,
                              RandomTokens(1 + static_cast<int>(rng() % 60), rng), NodeId(1000 + i),
                              rng(), 20 + static_cast<int>(rng() % 20), 0.5f + 0.1f * (rng() % 10)))
                .ok())
            << what;
      };
      for (int i = 0; i < before; ++i) submit_other(i);
      const int steps = static_cast<int>(rng() % 6);
      std::vector<SegmentResult> rs;
      for (int i = 0; i < steps; ++i) {
        for (SegmentResult& r : e->Step()) rs.push_back(std::move(r));
      }
      ASSERT_TRUE(e->Submit(Target(NodeId(1), prefix_)).ok()) << what;
      for (int i = before; i < others; ++i) submit_other(i);
      for (SegmentResult& r : RunAll(*e)) rs.push_back(std::move(r));
      const SegmentResult* got = FindTask(rs, kTargetTask);
      ASSERT_NE(got, nullptr) << what;
      ExpectSameChild(reference_.children[0], got->children[0], what);
    }
  }
}

TEST_F(BatchInvarianceTest, SameLogitsWithOneTwoOrThreeThreads) {
  for (int threads : {2, 3, 1}) {
    auto e = MakeEngine({.page_size = 16, .max_step_tokens = 512, .threads = threads});
    // 64 copies of the target's prefix in one batch: every product is split across threads.
    for (int i = 0; i < 63; ++i) {
      ASSERT_TRUE(
          e->Submit(Request(200 + i, std::nullopt, prefix_, NodeId(2000 + i), i, 12, 1.0f)).ok());
    }
    ASSERT_TRUE(e->Submit(Target(NodeId(1), prefix_)).ok());
    auto rs = RunAll(*e);
    const SegmentResult* got = FindTask(rs, kTargetTask);
    ASSERT_NE(got, nullptr);
    ExpectSameChild(reference_.children[0], got->children[0], "threads " + std::to_string(threads));
    EXPECT_TRUE(BitwiseEqual(reference_.prefix_logits, got->prefix_logits)) << threads;
  }
}

}  // namespace
}  // namespace treepo::worker

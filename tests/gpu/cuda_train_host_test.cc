// The host half of the CUDA training backend (common/cuda/train_plan.h), on any machine: batch
// planning (positions, output sources, tree key lists, the errors TrainModel gives) and the AdamW
// step's scalars, which applied with the kernel's formula reproduce learner::AdamW bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/cuda/train_plan.h"
#include "learner/adamw.h"
#include "learner/model_train.h"

namespace treepo::cuda {
namespace {

model::ModelConfig Config() {
  model::ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 32;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.vocab_size = 20;
  c.max_seq_len = 8;
  return c;
}

TEST(CudaTrainHostTest, PlanHasPositionsAndNextTokenTargets) {
  const std::vector<int32_t> tokens = {3, 4, 5, 9, 1, 2};
  const std::vector<int> lens = {3, 1, 2};
  TrainPlan p;
  ASSERT_TRUE(PlanTrainBatch({tokens, lens}, Config(), &p).ok());
  EXPECT_EQ(p.rows, 6);
  EXPECT_FALSE(p.tree);
  EXPECT_EQ(p.max_keys, 3);
  EXPECT_EQ(p.seq_starts, (std::vector<int>{0, 3, 4}));
  EXPECT_EQ(p.seq_lens, lens);
  auto at = [&](size_t off) {
    return std::vector<int32_t>(p.ints.begin() + off, p.ints.begin() + off + 6);
  };
  EXPECT_EQ(at(p.tokens), tokens);
  EXPECT_EQ(at(p.positions), (std::vector<int32_t>{0, 1, 2, 0, 0, 1}));
  // Row r predicts the next token of its sequence; a sequence's last row predicts nothing.
  EXPECT_EQ(at(p.out_src), (std::vector<int32_t>{0, 1, -1, -1, 4, -1}));
  EXPECT_EQ(at(p.out_tok), (std::vector<int32_t>{4, 5, 0, 0, 2, 0}));
}

// A token tree: depths as positions, each row predicted at its parent, key lists of ancestors
// root first, and attender lists their transpose (global rows, over two sequences).
TEST(CudaTrainHostTest, TreePlanHasAncestorListsAndPredictionsAtParents) {
  //  sequence 0: 0 -> 1 -> {2, 3 -> 4}; sequence 1: 5 -> 6
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7};
  const std::vector<int> lens = {5, 2}, parents = {-1, 0, 1, 1, 3, -1, 0};
  TrainPlan p;
  ASSERT_TRUE(PlanTrainBatch({tokens, lens, parents}, Config(), &p).ok());
  EXPECT_TRUE(p.tree);
  EXPECT_EQ(p.max_keys, 4);
  auto range = [&](size_t off, size_t n) {
    return std::vector<int32_t>(p.ints.begin() + off, p.ints.begin() + off + n);
  };
  EXPECT_EQ(range(p.positions, 7), (std::vector<int32_t>{0, 1, 2, 2, 3, 0, 1}));
  EXPECT_EQ(range(p.out_src, 7), (std::vector<int32_t>{-1, 0, 1, 1, 3, -1, 5}));
  EXPECT_EQ(range(p.out_tok, 7), tokens);
  EXPECT_EQ(range(p.key_off, 8), (std::vector<int32_t>{0, 1, 3, 6, 9, 13, 14, 16}));
  EXPECT_EQ(range(p.key_idx, 16),
            (std::vector<int32_t>{0, 0, 1, 0, 1, 2, 0, 1, 3, 0, 1, 3, 4, 5, 5, 6}));
  EXPECT_EQ(range(p.att_off, 8), (std::vector<int32_t>{0, 5, 9, 10, 12, 13, 15, 16}));
  EXPECT_EQ(range(p.att_idx, 16),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 1, 2, 3, 4, 2, 3, 4, 4, 5, 6, 6}));
}

// The same batches TrainModel refuses, with its messages.
TEST(CudaTrainHostTest, PlanRefusesWhatTrainModelRefuses) {
  const model::ModelConfig c = Config();
  auto w = model::ModelWeights::Random(c, 1);
  ASSERT_TRUE(w.ok());
  learner::TrainModel cpu(&*w);
  std::vector<float> lp;
  TrainPlan p;
  const std::vector<int32_t> ok = {1, 2, 3}, bad = {1, 20, 3}, long_seq(9, 1);
  const std::vector<int> three = {3}, two = {2}, nine = {9}, none = {};
  const std::vector<compute::TrainBatch> bads = {
      {ok, none}, {ok, two}, {bad, three}, {long_seq, nine}};
  for (const compute::TrainBatch& b : bads) {
    const Status want = cpu.Forward(b, &lp, nullptr);
    const Status got = PlanTrainBatch(b, c, &p);
    EXPECT_EQ(got.code(), StatusCode::kInvalidArgument) << got.ToString();
    EXPECT_EQ(got.message(), want.message());
  }
  // Tree batches: bad parents and depths past max_seq_len, with TrainModel's messages.
  const std::vector<int> bad_root = {0, 0, 0}, forward = {-1, 2, 0}, short_list = {-1, 0};
  const std::vector<int> deep_parents = {-1, 0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<compute::TrainBatch> bad_trees = {{ok, three, bad_root},
                                                      {ok, three, forward},
                                                      {ok, three, short_list},
                                                      {long_seq, nine, deep_parents}};
  for (const compute::TrainBatch& b : bad_trees) {
    const Status want = cpu.Forward(b, &lp, nullptr);
    const Status got = PlanTrainBatch(b, c, &p);
    EXPECT_EQ(got.code(), StatusCode::kInvalidArgument) << got.ToString();
    EXPECT_EQ(got.message(), want.message());
  }
}

// The kernel's per-parameter update (train_kernels.cu AdamWKernel) on the host with
// PlanAdamWStep's scalars equals learner::AdamW::Step bitwise, with warm-up, cosine decay,
// clipping and decayed and undecayed tensors, over several steps.
TEST(CudaTrainHostTest, AdamWScalarsReproduceTheCpuOptimiser) {
  const model::ModelConfig c = Config();
  auto w = model::ModelWeights::Random(c, 2);
  ASSERT_TRUE(w.ok());
  learner::AdamWOptions o;
  o.lr = 3e-3f;
  o.warmup_steps = 2;
  o.decay_steps = 5;
  o.max_grad_norm = 0.3f;
  o.weight_decay = 0.05f;
  learner::AdamW ref(w->layout, o);
  std::vector<float> p_ref = w->data, p = w->data;
  const std::vector<uint8_t> mask = compute::AdamWDecayMask(w->layout, o);
  const size_t n = p.size();
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  for (int step = 1; step <= 6; ++step) {
    std::vector<float> g(n);
    for (float& x : g) x = nd(rng) * (step == 3 ? 0.01f : 1.0f);  // step 3: not clipped
    std::vector<float> g_ref = g;
    double ss = 0.0;
    for (float x : g) ss += static_cast<double>(x) * x;
    compute::StepStats s;
    const AdamWArgs a = PlanAdamWStep(o, step, ss, &s);
    for (size_t i = 0; i < n; ++i) {  // AdamWKernel's body
      const float gi = g[i] * a.scale;
      const float mi = a.beta1 * m[i] + (1.0f - a.beta1) * gi;
      const float vi = a.beta2 * v[i] + (1.0f - a.beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      float pi = mask[i] ? p[i] * a.decay : p[i];
      pi -= a.step_size * mi / (std::sqrt(vi) * a.inv_sqrt_bc2 + a.eps);
      p[i] = pi;
    }
    const compute::StepStats want = ref.Step(p_ref.data(), g_ref.data());
    EXPECT_EQ(s.grad_norm, want.grad_norm) << step;
    EXPECT_EQ(s.clip_scale, want.clip_scale) << step;
    EXPECT_EQ(s.lr, want.lr) << step;
    ASSERT_EQ(p, p_ref) << step;
    ASSERT_EQ(m, ref.m()) << step;
  }
}

}  // namespace
}  // namespace treepo::cuda

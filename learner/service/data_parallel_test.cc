// Data-parallel learners against one learner: ranks that each train on their shard of a batch
// (advantage whitening and the gradient reduced over real Gloo collectives) must take the
// step one trainer takes on the whole batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <thread>

#include "common/collective/collective.h"
#include "common/testing/paths.h"
#include "common/tree/tree_shards.h"
#include "learner/service/learner_test_inputs.h"
#include "learner/service/train_batch.h"
#include "learner/service/trainer.h"

namespace treepo::learner {
namespace {

namespace fs = std::filesystem;

model::ModelWeights SmallModel() { return test_inputs::SmallModel(11); }
using test_inputs::RandomTrees;

// adam_eps 1: the AdamW update is close to linear in the gradient, so comparing updates
// compares the reduced gradient itself. With eps 1e-8 the first step is about lr * sign(g),
// and a gradient entry that is 0 up to float rounding (+-1e-12, summed in another order on
// two ranks) moves by +-lr: a comparison of Adam's amplification of rounding, not of the
// data-parallel step.
TrainerOptions Options() {
  TrainerOptions o;
  o.adamw.lr = 1e-2f;
  o.adamw.eps = 1.0f;
  o.adamw.warmup_steps = 0;
  o.micro_batch_tokens = 40;  // several micro-batches per rank
  o.epochs = 2;               // two optimiser steps: the second sees an off-policy batch
  return o;
}

struct StepResult {
  std::vector<float> weights;
  TrainStepMetrics metrics;
};

StepResult OneLearner(const std::vector<TreeRecord>& trees) {
  auto est = MakeAdvantageEstimator("treepo");
  EXPECT_TRUE(est.ok());
  auto batch = BuildLearnerBatch(trees, **est, 64);
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  auto t = Trainer::Create(SmallModel(), Options(), WeightVersion(0));
  EXPECT_TRUE(t.ok());
  auto m = (*t)->Step(*batch);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return {(*t)->weights().data, *m};
}

// Each rank on its own thread with its own Gloo collective, trees split by `shards`.
std::vector<StepResult> DataParallel(const std::vector<TreeRecord>& trees,
                                     const std::vector<std::vector<size_t>>& shards,
                                     const std::string& store) {
  std::vector<StepResult> out(shards.size());
  test_inputs::RunRanks(trees, shards, store, "dp",
                        [&](int r, const std::vector<TreeRecord>& mine, collective::Collective& c) {
                          auto est = MakeAdvantageEstimator("treepo");
                          ASSERT_TRUE(est.ok());
                          auto batch = BuildLearnerBatch(mine, **est, 64, [&](std::span<double> v) {
                            return c.AllReduceSum(v);
                          });
                          ASSERT_TRUE(batch.ok()) << batch.status().ToString();
                          auto t = Trainer::Create(SmallModel(), Options(), WeightVersion(0));
                          ASSERT_TRUE(t.ok());
                          ASSERT_TRUE((*t)->set_collective(&c).ok());
                          auto m = (*t)->Step(*batch);
                          ASSERT_TRUE(m.ok()) << m.status().ToString();
                          out[static_cast<size_t>(r)] = {(*t)->weights().data, *m};
                        });
  return out;
}

// The relative difference of two updates from `start` (a = one - start, b = other - start):
// the largest over tensors of ||b - a|| / ||a|| (2-norms over the tensor).
double MaxRelativeUpdateDiff(const model::ModelWeights& start, const std::vector<float>& one,
                             const std::vector<float>& other) {
  double worst = 0.0;
  for (const model::TensorInfo& t : start.layout.tensors()) {
    double diff = 0.0, scale = 0.0;
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      const double a = one[i] - start.data[i], b = other[i] - start.data[i];
      diff += (b - a) * (b - a);
      scale += a * a;
    }
    if (scale > 0) worst = std::max(worst, std::sqrt(diff / scale));
  }
  return worst;
}

class DataParallelTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::FreshTempDir("data_parallel_test"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DataParallelTest, TwoRanksTakeTheSameStepAsOneLearner) {
  const std::vector<TreeRecord> trees = RandomTrees(7, 3);
  const model::ModelWeights start = SmallModel();
  const StepResult one = OneLearner(trees);
  ASSERT_EQ(one.metrics.optimizer_steps, 2);
  const auto shards = ShardTreesByTokens(trees, 2);
  ASSERT_FALSE(shards[0].empty());
  ASSERT_FALSE(shards[1].empty());
  const std::vector<StepResult> dp = DataParallel(trees, shards, dir_ + "/a");
  ASSERT_EQ(dp.size(), 2u);
  // The ranks hold bit-identical weights: the same reduced gradient, the same AdamW.
  EXPECT_EQ(dp[0].weights, dp[1].weights);
  const double rel = MaxRelativeUpdateDiff(start, one.weights, dp[0].weights);
  EXPECT_LE(rel, 1e-5) << "max relative difference of the update " << rel;
  EXPECT_GT(MaxRelativeUpdateDiff(start, one.weights, start.data), 0.5);  // it did move
  std::printf("max relative difference of the update, 2 ranks vs 1: %.3g\n", rel);
  EXPECT_NEAR(dp[0].metrics.grad_norm, one.metrics.grad_norm, 1e-5 * one.metrics.grad_norm);
  // The loss is a sum of per-rank parts over the global token count.
  EXPECT_NEAR(dp[0].metrics.loss + dp[1].metrics.loss, one.metrics.loss, 1e-5);
  EXPECT_EQ(dp[0].metrics.tokens + dp[1].metrics.tokens, one.metrics.tokens);
}

TEST_F(DataParallelTest, UnevenAndEmptyShardsStillMatch) {
  const std::vector<TreeRecord> trees = RandomTrees(3, 8);
  const model::ModelWeights start = SmallModel();
  const StepResult one = OneLearner(trees);
  // Rank 0 all but one tree, rank 1 one tree, rank 2 none.
  const std::vector<StepResult> dp = DataParallel(trees, {{0, 2}, {1}, {}}, dir_ + "/b");
  ASSERT_EQ(dp.size(), 3u);
  EXPECT_EQ(dp[0].weights, dp[2].weights);
  EXPECT_EQ(dp[2].metrics.optimizer_steps, 2);
  EXPECT_LE(MaxRelativeUpdateDiff(start, one.weights, dp[2].weights), 1e-5);
}

TEST_F(DataParallelTest, TheDifferenceIsTheRoundingOfAnotherSummationOrder) {
  // One learner whose micro-batches add the gradient in another order differs from itself by
  // as much as two ranks differ from one: what is left is float rounding.
  const std::vector<TreeRecord> trees = RandomTrees(7, 3);
  const model::ModelWeights start = SmallModel();
  auto est = MakeAdvantageEstimator("treepo");
  ASSERT_TRUE(est.ok());
  auto batch = BuildLearnerBatch(trees, **est, 64);
  ASSERT_TRUE(batch.ok());
  const StepResult one = OneLearner(trees);
  TrainerOptions o = Options();
  o.micro_batch_tokens = 1000;  // one micro-batch
  auto t = Trainer::Create(SmallModel(), o, WeightVersion(0));
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Step(*batch).ok());
  const double floor = MaxRelativeUpdateDiff(start, one.weights, (*t)->weights().data);
  std::printf("one learner, other micro-batches: %.3g\n", floor);
  EXPECT_GT(floor, 0.0);
  EXPECT_LE(floor, 1e-5);
}

TEST_F(DataParallelTest, PerRankWhiteningWithoutTheReductionWouldDiffer) {
  // The check above can fail: shards whitened on their own give another step.
  const std::vector<TreeRecord> trees = RandomTrees(7, 3);
  const model::ModelWeights start = SmallModel();
  const StepResult one = OneLearner(trees);
  const std::vector<TreeRecord> half(trees.begin(), trees.begin() + 3);
  const StepResult part = OneLearner(half);
  EXPECT_GT(MaxRelativeUpdateDiff(start, one.weights, part.weights), 1e-3);
}

TEST_F(DataParallelTest, MiniBatchesNeedOneRank) {
  TrainerOptions o = Options();
  o.mini_batch_queries = 2;
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      collective::CollectiveOptions co;
      co.rank = r;
      co.world_size = 2;
      co.store_dir = dir_ + "/c";
      auto c = collective::CreateCollective(co);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      auto t = Trainer::Create(SmallModel(), o, WeightVersion(0));
      ASSERT_TRUE(t.ok());
      const Status st = (*t)->set_collective(c->get());
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(st.message().find("mini_batch_queries"), std::string::npos);
      // Neither rank leaves (closing its connections) before the other has met it.
      EXPECT_TRUE((*c)->Barrier().ok());
    });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace
}  // namespace treepo::learner

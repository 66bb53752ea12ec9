// The learner extension point (learner/service/learner_algorithm.h) with the example learner
// plug-in "reinforce_sgd" (example_learner.c): one step through the host's tree-packed
// forward/backward must be exactly SGD on the REINFORCE gradient computed here independently
// (one plain sequence per leaf through TrainModel), also split over two data-parallel ranks;
// its state goes into checkpoints; bad names, settings and ABI versions are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cluster/plugins.h"
#include "common/collective/collective.h"
#include "common/testing/paths.h"
#include "common/tree/tree_shards.h"
#include "learner/model_train.h"
#include "learner/service/checkpoint.h"
#include "learner/service/learner_algorithm.h"
#include "learner/service/learner_test_inputs.h"
#include "learner/service/train_batch.h"
#include "learner/service/trainer.h"

namespace treepo::learner {
namespace {

namespace fs = std::filesystem;

constexpr double kLr = 0.5;

model::ModelWeights SmallModel() { return test_inputs::SmallModel(5); }
using test_inputs::RandomTrees;

LearnerBatch Batch(const std::vector<TreeRecord>& trees, const SumReducer& reduce = {}) {
  auto est = MakeAdvantageEstimator("treepo");
  EXPECT_TRUE(est.ok());
  auto batch = BuildLearnerBatch(trees, **est, 64, reduce);
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return std::move(*batch);
}

TrainerOptions HostOptions() {
  TrainerOptions o;
  o.micro_batch_tokens = 40;  // several micro-batches
  o.tree_packing = true;      // the host packs; the reference below does not
  return o;
}

Result<std::unique_ptr<LearnerAlgorithm>> Make(const std::string& name, const std::string& settings,
                                               const TrainerOptions& to, int rank = 0,
                                               int world_size = 1) {
  LearnerAlgorithmOptions o;
  o.trainer = &to;
  o.settings = settings;
  o.rank = rank;
  o.world_size = world_size;
  return MakeLearnerAlgorithm(name, SmallModel(), o);
}

// The REINFORCE gradient of L = -(1/N) sum_t A_t logp_t over `batch`, one plain sequence per
// leaf through TrainModel (no packing, no micro-batches), in double; and L itself.
std::vector<double> ReferenceGradient(const model::ModelWeights& w, const LearnerBatch& batch,
                                      double* loss) {
  TrainModel model(&w);
  std::vector<float> grad(w.layout.total(), 0.0f), logp;
  const double n = static_cast<double>(batch.response_tokens);
  double sum = 0.0;
  for (const TrainSequence& s : batch.sequences) {
    const int len = static_cast<int>(s.tokens.size());
    EXPECT_TRUE(model.Forward({s.tokens, std::span<const int>(&len, 1), {}}, &logp, nullptr).ok());
    std::vector<float> dlogp(s.tokens.size(), 0.0f);
    for (int j = 0; j < s.response_tokens(); ++j) {
      // Row prompt_len - 1 + j predicts response token j.
      dlogp[s.prompt_len - 1 + j] = static_cast<float>(-s.advantages[j] / n);
      sum += s.advantages[j] * logp[s.prompt_len - 1 + j];
    }
    model.Backward(dlogp, {}, grad.data());
  }
  *loss = -sum / n;
  return std::vector<double>(grad.begin(), grad.end());
}

// Per tensor: max |got - want| / max |want|; the largest over tensors.
double MaxRelDiff(const model::ModelWeights& like, const std::vector<float>& got,
                  const std::vector<double>& want) {
  double worst = 0.0;
  for (const model::TensorInfo& t : like.layout.tensors()) {
    double diff = 0.0, scale = 0.0;
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      diff = std::max(diff, std::fabs(got[i] - want[i]));
      scale = std::max(scale, std::fabs(want[i]));
    }
    if (scale > 0) worst = std::max(worst, diff / scale);
  }
  return worst;
}

class PluginLearnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const Status st = cluster::LoadPluginFiles({EXAMPLE_LEARNER_SO});
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
};

TEST_F(PluginLearnerTest, RegistersBesideTheBuiltIn) {
  const std::vector<std::string> names = Learners().Names();
  ASSERT_GE(names.size(), 2u);
  EXPECT_EQ(names[0], "ppo_clip");  // the built-in first
  EXPECT_NE(std::find(names.begin(), names.end(), "reinforce_sgd"), names.end());
  auto ppo = Make("ppo_clip", "", HostOptions());
  ASSERT_TRUE(ppo.ok()) << ppo.status().ToString();
  EXPECT_EQ((*ppo)->name(), "ppo_clip");
  auto sgd = Make("reinforce_sgd", "", HostOptions());
  ASSERT_TRUE(sgd.ok()) << sgd.status().ToString();
  EXPECT_EQ((*sgd)->name(), "reinforce_sgd");
  EXPECT_EQ((*sgd)->version().value(), 0u);
}

TEST_F(PluginLearnerTest, OneStepIsSgdOnTheHostGradient) {
  const LearnerBatch batch = Batch(RandomTrees(5, 3));
  ASSERT_GT(batch.response_tokens, 0);
  const model::ModelWeights w0 = SmallModel();
  double want_loss = 0.0;
  const std::vector<double> g = ReferenceGradient(w0, batch, &want_loss);
  std::vector<double> want(w0.data.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = w0.data[i] - kLr * g[i];

  auto algo = Make("reinforce_sgd", "lr=" + std::to_string(kLr), HostOptions());
  ASSERT_TRUE(algo.ok()) << algo.status().ToString();
  auto m = (*algo)->Step(batch);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*algo)->version().value(), 1u);
  const std::vector<float>& w1 = (*algo)->weights().data;

  const double rel = MaxRelDiff(w0, w1, want);
  std::printf("max relative difference of W1 vs W0 - lr * G: %.3g\n", rel);
  EXPECT_LE(rel, 1e-5);
  // The check can fail: a 1% larger step (or one on another gradient) is far outside it.
  std::vector<double> off(want.size());
  for (size_t i = 0; i < off.size(); ++i) off[i] = w0.data[i] - 1.01 * kLr * g[i];
  const double rel_off = MaxRelDiff(w0, w1, off);
  std::printf("the same against W0 - 1.01 lr * G: %.3g\n", rel_off);
  EXPECT_GT(rel_off, 1e-4);

  EXPECT_NEAR(m->loss, want_loss, 1e-5 * std::max(1.0, std::fabs(want_loss)));
  double norm2 = 0.0;
  for (double x : g) norm2 += x * x;
  EXPECT_NEAR(m->grad_norm, std::sqrt(norm2), 1e-4 * std::sqrt(norm2));
  EXPECT_EQ(m->lr, kLr);
  EXPECT_EQ(m->optimizer_steps, 1);
  EXPECT_EQ(m->tokens, batch.response_tokens);
}

TEST_F(PluginLearnerTest, TwoRanksTakeTheStepOfOne) {
  const std::vector<TreeRecord> trees = RandomTrees(6, 9);
  auto one = Make("reinforce_sgd", "lr=0.5", HostOptions());
  ASSERT_TRUE(one.ok());
  auto one_m = (*one)->Step(Batch(trees));
  ASSERT_TRUE(one_m.ok());
  std::vector<double> loss(2, 0.0);
  const auto shards = ShardTreesByTokens(trees, 2);
  const std::string store = testing::FreshTempDir("plugin_learner_dp");
  std::vector<std::vector<float>> weights(2);
  test_inputs::RunRanks(trees, shards, store, "plugin_dp",
                        [&](int r, const std::vector<TreeRecord>& mine, collective::Collective& c) {
                          const LearnerBatch b =
                              Batch(mine, [&](std::span<double> v) { return c.AllReduceSum(v); });
                          auto algo = Make("reinforce_sgd", "lr=0.5", HostOptions(), r, 2);
                          ASSERT_TRUE(algo.ok());
                          ASSERT_TRUE((*algo)->set_collective(&c).ok());
                          auto m = (*algo)->Step(b);
                          ASSERT_TRUE(m.ok()) << m.status().ToString();
                          weights[static_cast<size_t>(r)] = (*algo)->weights().data;
                          loss[static_cast<size_t>(r)] = m->loss;
                        });
  fs::remove_all(store);
  EXPECT_EQ(weights[0], weights[1]);
  const std::vector<float>& w1 = (*one)->weights().data;
  const double rel =
      MaxRelDiff(SmallModel(), weights[0], std::vector<double>(w1.begin(), w1.end()));
  std::printf("max relative difference of the weights, 2 ranks vs 1: %.3g\n", rel);
  EXPECT_LE(rel, 1e-5);
  // Each rank reports its part of the loss; the learner process sums them.
  EXPECT_NEAR(loss[0] + loss[1], one_m->loss, 1e-6);
}

TEST_F(PluginLearnerTest, StateGoesIntoCheckpoints) {
  auto algo = Make("reinforce_sgd", "", HostOptions());
  ASSERT_TRUE(algo.ok());
  ASSERT_TRUE((*algo)->Step(Batch(RandomTrees(2, 1))).ok());
  const std::string root = testing::FreshTempDir("plugin_learner_ckpt");
  const std::string dir = CheckpointDir(root, 1);
  CheckpointState cs;
  cs.step = 1;
  cs.version = (*algo)->version().value();
  ASSERT_TRUE(SaveCheckpoint(dir, **algo, cs).ok());
  auto st = ReadCheckpointState(dir);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->algorithm, "reinforce_sgd");
  EXPECT_EQ(st->state_files, std::vector<std::string>{"reinforce_sgd_state.txt"});
  EXPECT_FALSE(fs::exists(dir + "/" + kOptimizerFile));
  auto newest = NewestCompleteCheckpoint(root);
  ASSERT_TRUE(newest.ok()) << newest.status().ToString();
  EXPECT_EQ(*newest, dir);
  auto fresh = Make("reinforce_sgd", "", HostOptions());
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE((*fresh)->LoadState(dir).ok());
  // Without its state file the checkpoint is incomplete, and loading it fails.
  fs::remove(dir + "/reinforce_sgd_state.txt");
  EXPECT_EQ(NewestCompleteCheckpoint(root).status().code(), StatusCode::kNotFound);
  const Status load = (*fresh)->LoadState(dir);
  EXPECT_EQ(load.code(), StatusCode::kDataLoss);
  EXPECT_NE(load.message().find("reinforce_sgd"), std::string::npos) << load.ToString();
  fs::remove_all(root);
}

TEST_F(PluginLearnerTest, RefusesUnknownNamesAndBadSettings) {
  auto unknown = Make("reinforce_sgdd", "", HostOptions());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find(
                "unknown learner algorithm 'reinforce_sgdd' (known: ppo_clip, reinforce_sgd"),
            std::string::npos)
      << unknown.status().ToString();

  auto bad_key = Make("reinforce_sgd", "momentum=0.9", HostOptions());
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.status().message().find("create failed"), std::string::npos);
  EXPECT_NE(bad_key.status().message().find("unknown setting"), std::string::npos)
      << bad_key.status().ToString();
  auto bad_lr = Make("reinforce_sgd", "lr=-1", HostOptions());
  ASSERT_FALSE(bad_lr.ok());
  EXPECT_NE(bad_lr.status().message().find("lr must be a number > 0"), std::string::npos)
      << bad_lr.status().ToString();
  auto ppo = Make("ppo_clip", "lr=1", HostOptions());
  ASSERT_FALSE(ppo.ok());
  EXPECT_NE(ppo.status().message().find("learner.algorithm_options"), std::string::npos);

  // A descriptor without step is refused; so is a second "reinforce_sgd".
  TreepoLearnerPlugin d{};
  d.name = "half";
  EXPECT_EQ(RegisterLearnerPlugin(d).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Learners().Contains("half"));
}

TEST_F(PluginLearnerTest, AnAbiOnePluginIsRefused) {
  const Status st = cluster::LoadPluginFiles({ABI1_SO});
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("built for plug-in ABI version 1, this treepo has version 2"),
            std::string::npos)
      << st.ToString();
}

}  // namespace
}  // namespace treepo::learner

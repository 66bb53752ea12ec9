#include "learner/service/trainer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/model/safetensors.h"
#include "common/testing/paths.h"
#include "learner/service/checkpoint.h"

namespace treepo::learner {
namespace {

model::ModelWeights TinyModel() {
  model::ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 32;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.vocab_size = 12;
  c.max_seq_len = 16;
  auto w = model::ModelWeights::Random(c, 5);
  EXPECT_TRUE(w.ok());
  return std::move(*w);
}

// One sequence per advantage sign, sampled by `version`.
LearnerBatch TwoSequences(uint64_t version) {
  LearnerBatch b;
  for (int i = 0; i < 2; ++i) {
    TrainSequence s;
    s.tokens = {1, 4, 5, i == 0 ? 6 : 7, i == 0 ? 8 : 9};
    s.prompt_len = 2;
    s.advantages.assign(3, i == 0 ? 1.0f : -1.0f);
    s.rollout_logp.assign(3, -2.0f);
    s.versions.assign(3, version);
    s.tree = static_cast<size_t>(i);
    b.sequences.push_back(s);
  }
  b.response_tokens = 6;
  return b;
}

double SeqLogp(const model::ModelWeights& w, const TrainSequence& s) {
  TrainModel m(&w);
  std::vector<float> logp;
  EXPECT_TRUE(
      m.Forward({s.tokens, std::vector<int>{static_cast<int>(s.tokens.size())}}, &logp, nullptr)
          .ok());
  double sum = 0;
  for (int j = 0; j < s.response_tokens(); ++j) sum += logp[s.prompt_len - 1 + j];
  return sum;
}

TEST(TrainerTest, StepRaisesPositiveAndLowersNegativeSequences) {
  TrainerOptions o;
  o.adamw.lr = 1e-2f;
  o.micro_batch_tokens = 5;  // one sequence per micro-batch: exercises accumulation
  auto t = Trainer::Create(TinyModel(), o, WeightVersion(0));
  ASSERT_TRUE(t.ok());
  const LearnerBatch b = TwoSequences(0);
  const double up0 = SeqLogp((*t)->weights(), b.sequences[0]);
  const double down0 = SeqLogp((*t)->weights(), b.sequences[1]);
  auto m = (*t)->Step(b);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*t)->version(), WeightVersion(1));
  EXPECT_NEAR(m->ratio_mean, 1.0, 1e-5);  // sync: logp_old is the current policy
  EXPECT_EQ(m->clip_fraction, 0.0);
  EXPECT_GT(m->grad_norm, 0.0);
  EXPECT_EQ(m->optimizer_steps, 1);
  EXPECT_GT(SeqLogp((*t)->weights(), b.sequences[0]), up0);
  EXPECT_LT(SeqLogp((*t)->weights(), b.sequences[1]), down0);
}

TEST(TrainerTest, ReusingTheForwardForOldLogpGivesTheSameUpdate) {
  LearnerBatch b = TwoSequences(0);
  b.sequences[0].rollout_logp = {-1.0f, -2.5f, -0.5f};  // mismatch is reported either way
  std::vector<float> weights[2];
  double mismatch[2];
  for (int reuse = 0; reuse < 2; ++reuse) {
    TrainerOptions o;
    o.adamw.lr = 1e-2f;
    o.micro_batch_tokens = 5;
    o.reuse_forward_for_old_logp = reuse == 1;
    auto t = Trainer::Create(TinyModel(), o, WeightVersion(0));
    ASSERT_TRUE(t.ok());
    auto m = (*t)->Step(b);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_NEAR(m->ratio_mean, 1.0, 1e-6);
    weights[reuse] = (*t)->weights().data;
    mismatch[reuse] = m->logp_mismatch;
  }
  EXPECT_EQ(weights[0], weights[1]);
  EXPECT_GT(mismatch[0], 0.1);
  EXPECT_DOUBLE_EQ(mismatch[0], mismatch[1]);
}

TEST(TrainerTest, OldVersionsAreKeptUpToTheStalenessBound) {
  TrainerOptions o;
  o.adamw.lr = 1e-3f;
  o.max_staleness = 1;
  auto t = Trainer::Create(TinyModel(), o, WeightVersion(0));
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Step(TwoSequences(0)).ok());
  auto m = (*t)->Step(TwoSequences(0));  // tokens of version 0 at version 1: kept
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_GT(std::abs(m->ratio_mean - 1.0), 0.0);
  // At version 2 version 0 is two behind: refused.
  EXPECT_EQ((*t)->Step(TwoSequences(0)).status().code(), StatusCode::kFailedPrecondition);
}

CheckpointState State(int64_t step, uint64_t version) {
  CheckpointState s;
  s.step = step;
  s.version = version;
  return s;
}

TEST(TrainerTest, CheckpointRoundTrip) {
  TrainerOptions o;
  auto t = Trainer::Create(TinyModel(), o, WeightVersion(0));
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Step(TwoSequences(0)).ok());
  const std::string root = ::treepo::testing::FreshTempDir("ckpt");
  const std::string dir = CheckpointDir(root, 1);
  ASSERT_TRUE(SaveCheckpoint(dir, **t, State(1, 1)).ok());
  auto st = ReadCheckpointState(dir);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->step, 1);
  EXPECT_EQ(st->version, 1u);
  EXPECT_EQ(st->algorithm, "ppo_clip");
  EXPECT_EQ(st->state_files, std::vector<std::string>{kOptimizerFile});
  auto newest = NewestCompleteCheckpoint(root);
  ASSERT_TRUE(newest.ok()) << newest.status().ToString();
  EXPECT_EQ(*newest, dir);
  // Without the file its algorithm's state is in, the checkpoint is incomplete.
  std::filesystem::remove(dir + "/" + kOptimizerFile);
  EXPECT_EQ(NewestCompleteCheckpoint(root).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(SaveCheckpoint(dir, **t, State(1, 1)).ok());
  auto w = model::LoadModel(dir);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->data, (*t)->weights().data);
  AdamW fresh(w->layout, o.adamw);
  ASSERT_TRUE(fresh.Load(dir + "/" + kOptimizerFile).ok());
  EXPECT_EQ(fresh.step(), 1);
  std::filesystem::remove_all(root);
}

// Every checkpoint, intermediate ones too, carries the companion files of the model it was
// trained from, so `treepo eval --model CHECKPOINT` needs no --tokenizer; the write leaves no
// temporary directory and the state's numbers are range-checked when read back.
TEST(TrainerTest, CheckpointCarriesTheTokenizerAndTaskOfItsModel) {
  auto t = Trainer::Create(TinyModel(), TrainerOptions(), WeightVersion(0));
  ASSERT_TRUE(t.ok());
  const std::string root = ::treepo::testing::FreshTempDir("ckpt_companions");
  const std::string base = root + "/base";
  std::filesystem::create_directories(base);
  std::ofstream(base + "/tokenizer.bin") << "tokenizer bytes";
  std::ofstream(base + "/task.json") << "{}";
  const std::string dir = CheckpointDir(root + "/checkpoints", 2);
  ASSERT_TRUE(SaveCheckpoint(dir, **t, State(2, 2), base).ok());
  std::ifstream tok(dir + "/tokenizer.bin");
  std::string text((std::istreambuf_iterator<char>(tok)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "tokenizer bytes");
  EXPECT_TRUE(std::filesystem::exists(dir + "/task.json"));
  EXPECT_FALSE(std::filesystem::exists(dir + ".tmp"));
  std::ofstream(dir + "/" + kStateFile, std::ios::trunc) << R"({"step": 1e30, "version": 1})";
  EXPECT_EQ(ReadCheckpointState(dir).status().code(), StatusCode::kDataLoss);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace treepo::learner

namespace treepo::learner {
namespace {

// Two trees of three leaves sharing prefixes (and, in tree 1, two leaves with equal tokens),
// sampled by `version`, with different advantages per leaf.
LearnerBatch BranchingTrees(uint64_t version = 0) {
  LearnerBatch b;
  const std::vector<std::vector<int32_t>> leaves[2] = {
      {{1, 4, 5, 6, 8, 2}, {1, 4, 5, 6, 9}, {1, 4, 5, 7, 7, 3}},
      {{2, 3, 10, 11}, {2, 3, 10, 11}, {2, 3, 0, 1, 5}}};
  float adv = 1.0f;
  for (size_t tree = 0; tree < 2; ++tree) {
    for (const std::vector<int32_t>& tokens : leaves[tree]) {
      TrainSequence s;
      s.tokens = tokens;
      s.prompt_len = tree == 0 ? 3 : 2;
      s.advantages.assign(s.response_tokens(), adv);
      adv = -0.6f * adv + 0.1f;
      s.rollout_logp.assign(s.response_tokens(), -2.0f);
      s.versions.assign(s.response_tokens(), version);
      s.tree = tree;
      b.response_tokens += s.response_tokens();
      b.sequences.push_back(s);
    }
  }
  return b;
}

void ExpectSameStep(TrainerOptions o) {
  o.adamw.lr = 1e-2f;
  o.loss.entropy_coef = 0.01f;
  o.tree_packing = false;
  auto plain = Trainer::Create(TinyModel(), o, WeightVersion(0));
  o.tree_packing = true;
  auto packed = Trainer::Create(TinyModel(), o, WeightVersion(0));
  ASSERT_TRUE(plain.ok() && packed.ok());
  for (int step = 0; step < 2; ++step) {
    const LearnerBatch b = BranchingTrees(step);
    auto mp = (*plain)->Step(b);
    auto mk = (*packed)->Step(b);
    ASSERT_TRUE(mp.ok() && mk.ok()) << mp.status().ToString() << mk.status().ToString();
    EXPECT_NEAR(mp->loss, mk->loss, 1e-6 * std::max(1.0, std::abs(mp->loss)));
    EXPECT_NEAR(mp->grad_norm, mk->grad_norm, 1e-5 * mp->grad_norm);
    EXPECT_NEAR(mp->entropy_mean, mk->entropy_mean, 1e-5);
    EXPECT_NEAR(mp->logp_mismatch, mk->logp_mismatch, 1e-5);
    EXPECT_EQ(mp->tokens, mk->tokens);
  }
  const auto& wp = (*plain)->weights().data;
  const auto& wk = (*packed)->weights().data;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < wp.size(); ++i) {
    diff += (double(wp[i]) - wk[i]) * (double(wp[i]) - wk[i]);
    norm += double(wp[i]) * wp[i];
  }
  EXPECT_LT(std::sqrt(diff), 1e-5 * std::sqrt(norm));
}

// Tree-packed training is the per-leaf training, step for step: on-policy (logp_old from the
// training forward), with separate logp_old passes (two epochs, two mini-batches), and with
// micro-batches that split the batch between trees.
TEST(TrainerTest, TreePackingGivesThePerLeafUpdate) {
  ExpectSameStep(TrainerOptions{});
  TrainerOptions o;
  o.epochs = 2;
  o.mini_batch_queries = 1;
  ExpectSameStep(o);
  o = TrainerOptions{};
  o.micro_batch_tokens = 8;
  ExpectSameStep(o);
}

TEST(TrainerTest, PackedRowsHoldEachPrefixOnce) {
  const LearnerBatch b = BranchingTrees();
  const Rows r = BuildRows(b, {0, 1, 2, 3, 4, 5}, true);
  // Tree 0: 1 4 5 | 6 8 2, 9 | 7 7 3 -> 3 + 3 + 1 + 3 = 10 rows; tree 1: 2 3 | 10 11 | 0 1 5
  // -> 2 + 2 + 3 = 7 rows (its equal leaves share every row).
  EXPECT_EQ(r.seq_lens, (std::vector<int>{10, 7}));
  EXPECT_EQ(r.tokens.size(), r.parents.size());
  EXPECT_EQ(r.out[3], r.out[4]);
  EXPECT_EQ(r.out[0][0], r.out[1][0]);  // token 6 shared by leaves 0 and 1
  const Rows plain = BuildRows(b, {0, 1, 2, 3, 4, 5}, false);
  EXPECT_EQ(plain.tokens.size(), 6u + 5 + 6 + 4 + 4 + 5);
  EXPECT_TRUE(plain.parents.empty());
}

}  // namespace
}  // namespace treepo::learner

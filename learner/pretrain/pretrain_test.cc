#include "learner/pretrain/pretrain.h"

#include <gtest/gtest.h>

#include <random>

namespace treepo::learner {
namespace {

model::ModelConfig TinyConfig() {
  model::ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 32;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.vocab_size = 12;
  c.max_seq_len = 16;
  return c;
}

// Sequences "BOS a a+1 a+2 ... EOS" over ids 3..11: the next token is predictable.
std::vector<PretrainSequence> CountingCorpus() {
  std::vector<PretrainSequence> corpus;
  for (int a = 3; a < 9; ++a) {
    PretrainSequence s;
    s.tokens = {1};
    for (int t = a; t < 12; ++t) s.tokens.push_back(t);
    s.tokens.push_back(2);
    s.loss_start = 2;
    corpus.push_back(s);
  }
  return corpus;
}

PretrainConfig TinyTrain() {
  PretrainConfig c;
  c.steps = 40;
  c.batch_size = 4;
  c.seed = 7;
  c.adamw.lr = 1e-2f;
  c.adamw.warmup_steps = 5;
  c.log_every = 10;
  c.blas_threads = 1;
  return c;
}

TEST(PretrainTest, LossDecreasesAndRunsAreDeterministic) {
  std::vector<std::vector<float>> finals;
  std::vector<PretrainLog> logs;
  for (int run = 0; run < 2; ++run) {
    auto w = model::ModelWeights::Random(TinyConfig(), 3);
    ASSERT_TRUE(w.ok());
    logs.clear();
    auto stats = Pretrain(TinyTrain(), CountingCorpus(), &*w,
                          [&](const PretrainLog& l) { logs.push_back(l); });
    ASSERT_TRUE(stats.ok()) << stats.status().ToString();
    EXPECT_LT(stats->last_loss, 0.5 * stats->first_loss);
    EXPECT_GT(stats->tokens, 0);
    finals.push_back(w->data);
  }
  ASSERT_EQ(logs.size(), 4u);
  EXPECT_EQ(logs.back().step, 40);
  EXPECT_EQ(finals[0], finals[1]);
}

TEST(PretrainTest, SeedChangesTheOrder) {
  auto a = model::ModelWeights::Random(TinyConfig(), 3);
  auto b = model::ModelWeights::Random(TinyConfig(), 3);
  PretrainConfig c = TinyTrain();
  c.steps = 3;
  ASSERT_TRUE(Pretrain(c, CountingCorpus(), &*a, {}).ok());
  c.seed = 8;
  ASSERT_TRUE(Pretrain(c, CountingCorpus(), &*b, {}).ok());
  EXPECT_NE(a->data, b->data);
}

TEST(PretrainTest, RefusesBadCorpusWithoutChangingWeights) {
  auto w = model::ModelWeights::Random(TinyConfig(), 3);
  const std::vector<float> before = w->data;
  std::vector<PretrainSequence> corpus = CountingCorpus();
  corpus[2].tokens[3] = 12;  // outside the vocabulary
  EXPECT_EQ(Pretrain(TinyTrain(), corpus, &*w, {}).status().code(), StatusCode::kInvalidArgument);
  corpus = CountingCorpus();
  corpus[0].loss_start = static_cast<int>(corpus[0].tokens.size());
  EXPECT_FALSE(Pretrain(TinyTrain(), corpus, &*w, {}).ok());
  EXPECT_FALSE(Pretrain(TinyTrain(), {}, &*w, {}).ok());
  PretrainConfig c = TinyTrain();
  c.steps = 0;
  EXPECT_FALSE(Pretrain(c, CountingCorpus(), &*w, {}).ok());
  EXPECT_EQ(w->data, before);
}

}  // namespace
}  // namespace treepo::learner

#include "learner/model_train.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace treepo::learner {
namespace {

model::ModelConfig TinyConfig(model::RopeLayout layout, bool tied, bool bias) {
  model::ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 24;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 11;
  c.max_seq_len = 16;
  c.rope_layout = layout;
  c.tied_embeddings = tied;
  c.qkv_bias = bias;
  return c;
}

// L = sum over rows of wl[r] * logp[r] + we[r] * entropy[r] (in double).
double Objective(const model::ModelWeights& w, const TrainBatch& b, const std::vector<float>& wl,
                 const std::vector<float>& we) {
  TrainModel m(&w);
  std::vector<float> lp, ent;
  EXPECT_TRUE(m.Forward(b, &lp, &ent).ok());
  double s = 0.0;
  for (size_t r = 0; r < lp.size(); ++r) s += wl[r] * double(lp[r]) + we[r] * double(ent[r]);
  return s;
}

void CheckGradients(const model::ModelConfig& c, float entropy_weight) {
  auto wr = model::ModelWeights::Random(c, 7);
  ASSERT_TRUE(wr.ok());
  model::ModelWeights w = std::move(*wr);
  // Larger weights and non-trivial norms/biases so every path matters.
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  for (const model::TensorInfo& t : w.layout.tensors()) {
    const bool vec = t.shape.size() == 1;  // norm weights (1) and biases (0)
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      w.data[i] = vec ? w.data[i] + nd(rng) : w.data[i] * 10.0f;
    }
  }
  const std::vector<int32_t> tokens = {1, 5, 3, 9, 2, 4, 4, 7, 10, 0, 6};
  const std::vector<int> lens = {6, 1, 4};
  TrainBatch b{tokens, lens};
  std::vector<float> wl(tokens.size()), we(tokens.size());
  for (size_t r = 0; r < tokens.size(); ++r) {
    wl[r] = 0.5f + 0.1f * r;
    we[r] = entropy_weight * (0.3f - 0.05f * r);
  }
  TrainModel m(&w);
  std::vector<float> lp, ent;
  ASSERT_TRUE(m.Forward(b, &lp, &ent).ok());
  EXPECT_EQ(lp[5], 0.0f);  // last row of a sequence
  std::vector<float> grad(w.layout.total(), 0.0f);
  m.Backward(wl, we, grad.data());
  std::mt19937 pick(11);
  for (const model::TensorInfo& t : w.layout.tensors()) {
    for (int trial = 0; trial < 3; ++trial) {
      const size_t i = t.offset + pick() % t.numel;
      const float orig = w.data[i];
      const float h = 1e-2f;
      w.data[i] = orig + h;
      const double up = Objective(w, b, wl, we);
      w.data[i] = orig - h;
      const double down = Objective(w, b, wl, we);
      w.data[i] = orig;
      const double fd = (up - down) / (2 * h);
      EXPECT_NEAR(grad[i], fd, 2e-2 * std::max(1.0, std::abs(fd))) << t.name << " [" << i << "]";
    }
  }
}

TEST(TrainModelTest, GradientsMatchFiniteDifferencesAdjacentTied) {
  CheckGradients(TinyConfig(model::RopeLayout::kAdjacentPairs, true, false), 0.0f);
}

TEST(TrainModelTest, EntropyGradientsMatchFiniteDifferences) {
  CheckGradients(TinyConfig(model::RopeLayout::kAdjacentPairs, true, false), 1.0f);
}

TEST(TrainModelTest, GradientsMatchFiniteDifferencesHalfUntiedBias) {
  CheckGradients(TinyConfig(model::RopeLayout::kRotateHalf, false, true), 1.0f);
}

TEST(TrainModelTest, RejectsBadBatches) {
  auto w = model::ModelWeights::Random(TinyConfig(model::RopeLayout::kRotateHalf, true, false), 1);
  ASSERT_TRUE(w.ok());
  TrainModel m(&*w);
  std::vector<float> lp;
  const std::vector<int32_t> bad = {1, 11};
  const std::vector<int> lens = {2};
  EXPECT_EQ(m.Forward(TrainBatch{bad, lens}, &lp, nullptr).code(), StatusCode::kInvalidArgument);
  const std::vector<int32_t> ok = {1, 2};
  const std::vector<int> wrong = {3};
  EXPECT_EQ(m.Forward(TrainBatch{ok, wrong}, &lp, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Forward(TrainBatch{ok, {}}, &lp, nullptr).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::learner

namespace treepo::learner {
namespace {

// Gradient accumulation: Backward adds, so two micro-batches give the gradient of the batch
// that holds both (the loss's denominator is the mini-batch's, here folded into dlogp).
TEST(TrainModelTest, MicroBatchGradientsAccumulate) {
  auto w = model::ModelWeights::Random(TinyConfig(model::RopeLayout::kRotateHalf, true, true), 5);
  ASSERT_TRUE(w.ok());
  const std::vector<int32_t> a = {1, 4, 6, 2}, b = {3, 3, 9};
  std::vector<int32_t> both = a;
  both.insert(both.end(), b.begin(), b.end());
  const std::vector<int> la = {4}, lb = {3}, lab = {4, 3};
  TrainModel m(&*w);
  std::vector<float> lp, g1(w->layout.total(), 0.0f), g2(w->layout.total(), 0.0f);
  ASSERT_TRUE(m.Forward({a, la}, &lp, nullptr).ok());
  m.Backward(std::vector<float>(4, -0.2f), {}, g1.data());
  ASSERT_TRUE(m.Forward({b, lb}, &lp, nullptr).ok());
  m.Backward(std::vector<float>(3, -0.2f), {}, g1.data());
  ASSERT_TRUE(m.Forward({both, lab}, &lp, nullptr).ok());
  m.Backward(std::vector<float>(7, -0.2f), {}, g2.data());
  for (size_t i = 0; i < g1.size(); ++i) ASSERT_NEAR(g1[i], g2[i], 1e-5f) << i;
}

}  // namespace
}  // namespace treepo::learner

#include "learner/adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/testing/paths.h"

namespace treepo::learner {
namespace {

model::ModelConfig Tiny() {
  model::ModelConfig c;
  c.dim = 8;
  c.hidden_dim = 12;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.vocab_size = 5;
  c.max_seq_len = 8;
  return c;
}

// Reference AdamW for one scalar (PyTorch's formula), in double.
struct Ref {
  double m = 0, v = 0, p;
  void Step(double g, int t, double lr, double wd) {
    p *= 1 - lr * wd;
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    const double mh = m / (1 - std::pow(0.9, t)), vh = v / (1 - std::pow(0.999, t));
    p -= lr * mh / (std::sqrt(vh) + 1e-8);
  }
};

TEST(AdamWTest, MatchesReferenceFormulaAndSkipsDecayOfVectors) {
  auto w = model::ModelWeights::Random(Tiny(), 1);
  ASSERT_TRUE(w.ok());
  AdamWOptions o;
  o.lr = 0.01f;
  o.max_grad_norm = 0.0f;
  AdamW opt(w->layout, o);
  const size_t mat = w->layout.embed();       // decayed
  const size_t vec = w->layout.final_norm();  // not decayed
  Ref rm{0, 0, w->data[mat]}, rv{0, 0, w->data[vec]};
  std::vector<float> grad(w->layout.total());
  for (int t = 1; t <= 3; ++t) {
    grad[mat] = 0.5f * t;
    grad[vec] = -0.25f * t;
    opt.Step(w->data.data(), grad.data());
    rm.Step(0.5 * t, t, 0.01, 0.1);
    rv.Step(-0.25 * t, t, 0.01, 0.0);
    EXPECT_EQ(grad[mat], 0.0f);  // consumed
  }
  EXPECT_NEAR(w->data[mat], rm.p, 1e-6);
  EXPECT_NEAR(w->data[vec], rv.p, 1e-6);
  EXPECT_EQ(opt.step(), 3);
}

TEST(AdamWTest, WarmupAndClipping) {
  auto w = model::ModelWeights::Zeros(Tiny());
  ASSERT_TRUE(w.ok());
  AdamWOptions o;
  o.lr = 1.0f;
  o.warmup_steps = 4;
  AdamW opt(w->layout, o);
  EXPECT_DOUBLE_EQ(opt.LearningRate(1), 0.25);
  EXPECT_DOUBLE_EQ(opt.LearningRate(4), 1.0);
  EXPECT_DOUBLE_EQ(opt.LearningRate(9), 1.0);
  std::vector<float> grad(w->layout.total(), 0.0f);
  grad[0] = 3.0f;
  grad[1] = 4.0f;
  const StepStats s = opt.Step(w->data.data(), grad.data());
  EXPECT_NEAR(s.grad_norm, 5.0, 1e-9);
  EXPECT_NEAR(s.clip_scale, 0.2, 1e-6);
  EXPECT_DOUBLE_EQ(s.lr, 0.25);
  EXPECT_NEAR(opt.m()[0], 0.1 * 3.0 * 0.2, 1e-6);
}

TEST(AdamWTest, CosineDecayAfterWarmup) {
  auto w = model::ModelWeights::Zeros(Tiny());
  ASSERT_TRUE(w.ok());
  AdamWOptions o;
  o.lr = 1.0f;
  o.warmup_steps = 4;
  o.decay_steps = 14;
  o.min_lr_ratio = 0.2f;
  AdamW opt(w->layout, o);
  EXPECT_DOUBLE_EQ(opt.LearningRate(2), 0.5);
  EXPECT_NEAR(opt.LearningRate(4), 1.0, 1e-12);
  // Half-way through the decay the cosine is at its midpoint: 0.2 + 0.8 * 0.5.
  EXPECT_NEAR(opt.LearningRate(9), 0.6, 1e-6);
  EXPECT_NEAR(opt.LearningRate(14), 0.2, 1e-6);
  EXPECT_NEAR(opt.LearningRate(100), 0.2, 1e-6);
  o.min_lr_ratio = 1.5f;
  EXPECT_FALSE(o.Validate().ok());
}

TEST(AdamWTest, SaveLoadRoundTrip) {
  auto w = model::ModelWeights::Random(Tiny(), 2);
  ASSERT_TRUE(w.ok());
  AdamW a(w->layout, AdamWOptions{});
  std::vector<float> grad(w->layout.total(), 0.01f);
  a.Step(w->data.data(), grad.data());
  grad.assign(grad.size(), -0.02f);
  a.Step(w->data.data(), grad.data());
  const std::string path = ::treepo::testing::FreshTempDir("adamw_test") + "/adamw.safetensors";
  ASSERT_TRUE(a.Save(path).ok());
  AdamW b(w->layout, AdamWOptions{});
  const Status st = b.Load(path);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(b.step(), 2);
  EXPECT_EQ(b.m(), a.m());
  EXPECT_EQ(b.v(), a.v());
  model::ModelConfig big = Tiny();
  big.vocab_size = 6;
  AdamW c(model::ParamLayout(big), AdamWOptions{});
  EXPECT_EQ(c.Load(path).code(), StatusCode::kInvalidArgument);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace treepo::learner

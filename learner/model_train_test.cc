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

namespace treepo::learner {
namespace {

// A prompt (1 5 3) with three paths; packed, every token of the tree once.
//   path 0: 1 5 3 | 9 2 4      path 1: 1 5 3 | 9 7      path 2: 1 5 3 | 6 0 10
const std::vector<int32_t> kTreeTokens = {1, 5, 3, 9, 2, 4, 7, 6, 0, 10};
const std::vector<int> kTreeParents = {-1, 0, 1, 2, 3, 4, 3, 2, 7, 8};
const std::vector<std::vector<int>> kPathRows = {
    {0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 6}, {0, 1, 2, 7, 8, 9}};

// Tree-packed forward/backward equals the per-path one: the same log-probs and entropies per
// path token, and the gradient of a per-(path, token) weighted objective equals the packed
// gradient with each unique token's weights summed over the paths through it.
void CheckTreeMatchesPaths(const model::ModelConfig& c) {
  auto w = model::ModelWeights::Random(c, 9);
  ASSERT_TRUE(w.ok());
  for (float& x : w->data) x *= 4.0f;
  std::vector<int32_t> flat;
  std::vector<int> lens;
  for (const auto& p : kPathRows) {
    for (int r : p) flat.push_back(kTreeTokens[r]);
    lens.push_back(static_cast<int>(p.size()));
  }
  TrainModel paths(&*w), tree(&*w);
  std::vector<float> lp_paths, ent_paths, lp_tree, ent_tree;
  ASSERT_TRUE(paths.Forward({flat, lens}, &lp_paths, &ent_paths).ok());
  const std::vector<int> one = {static_cast<int>(kTreeTokens.size())};
  ASSERT_TRUE(tree.Forward({kTreeTokens, one, kTreeParents}, &lp_tree, &ent_tree).ok());
  EXPECT_EQ(lp_tree[0], 0.0f);
  std::vector<float> wl_paths(flat.size(), 0.0f), we_paths(flat.size(), 0.0f);
  std::vector<float> wl_tree(kTreeTokens.size(), 0.0f), we_tree(kTreeTokens.size(), 0.0f);
  size_t start = 0;
  for (size_t p = 0; p < kPathRows.size(); ++p) {
    // Row start + j - 1 of the path predicts its token j (the tree's row kPathRows[p][j]).
    for (size_t j = 1; j < kPathRows[p].size(); ++j) {
      const size_t row = start + j - 1;
      const int node = kPathRows[p][j];
      EXPECT_NEAR(lp_paths[row], lp_tree[node], 1e-5f) << "path " << p << " token " << j;
      EXPECT_NEAR(ent_paths[row], ent_tree[node], 1e-5f) << "path " << p << " token " << j;
      const float wl = 0.3f + 0.1f * static_cast<float>(p) - 0.05f * static_cast<float>(j);
      const float we = 0.2f - 0.07f * static_cast<float>(p);
      wl_paths[row] = wl;
      we_paths[row] = we;
      wl_tree[node] += wl;
      we_tree[node] += we;
    }
    start += kPathRows[p].size();
  }
  std::vector<float> g_paths(w->layout.total(), 0.0f), g_tree(w->layout.total(), 0.0f);
  paths.Backward(wl_paths, we_paths, g_paths.data());
  tree.Backward(wl_tree, we_tree, g_tree.data());
  for (const model::TensorInfo& t : w->layout.tensors()) {
    double diff = 0.0, norm = 0.0;
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      diff += (double(g_tree[i]) - g_paths[i]) * (double(g_tree[i]) - g_paths[i]);
      norm += double(g_paths[i]) * g_paths[i];
    }
    EXPECT_LT(std::sqrt(diff), 1e-5 * std::max(1.0, std::sqrt(norm))) << t.name;
  }
}

TEST(TrainModelTreeTest, PackedTreeMatchesPerPathAdjacentTied) {
  CheckTreeMatchesPaths(TinyConfig(model::RopeLayout::kAdjacentPairs, true, false));
}

TEST(TrainModelTreeTest, PackedTreeMatchesPerPathHalfUntiedBias) {
  CheckTreeMatchesPaths(TinyConfig(model::RopeLayout::kRotateHalf, false, true));
}

// A chain given as a tree (parent = previous token) is the plain sequence, outputs shifted by
// one row.
TEST(TrainModelTreeTest, ChainTreeIsThePlainSequence) {
  auto w = model::ModelWeights::Random(TinyConfig(model::RopeLayout::kRotateHalf, true, true), 4);
  ASSERT_TRUE(w.ok());
  const std::vector<int32_t> tokens = {2, 7, 7, 1, 9};
  const std::vector<int> lens = {5}, parents = {-1, 0, 1, 2, 3};
  TrainModel a(&*w), b(&*w);
  std::vector<float> lpa, lpb;
  ASSERT_TRUE(a.Forward({tokens, lens}, &lpa, nullptr).ok());
  ASSERT_TRUE(b.Forward({tokens, lens, parents}, &lpb, nullptr).ok());
  for (int r = 1; r < 5; ++r) EXPECT_NEAR(lpa[r - 1], lpb[r], 1e-6f) << r;
}

TEST(TrainModelTreeTest, RejectsBadParents) {
  auto w = model::ModelWeights::Random(TinyConfig(model::RopeLayout::kRotateHalf, true, false), 1);
  ASSERT_TRUE(w.ok());
  TrainModel m(&*w);
  std::vector<float> lp;
  const std::vector<int32_t> tokens = {1, 2, 3};
  const std::vector<int> lens = {3};
  for (const std::vector<int>& parents :
       std::vector<std::vector<int>>{{0, 0, 1}, {-1, -1, 1}, {-1, 2, 1}, {-1, 0, 3}, {-1, 0}}) {
    EXPECT_EQ(m.Forward({tokens, lens, parents}, &lp, nullptr).code(),
              StatusCode::kInvalidArgument);
  }
  // Depth, not packed length, is bounded by max_seq_len (16): 20 children of one root fit.
  std::vector<int32_t> wide(21, 3);
  std::vector<int> wide_parents(21, 0);
  wide_parents[0] = -1;
  const std::vector<int> wide_len = {21};
  EXPECT_TRUE(m.Forward({wide, wide_len, wide_parents}, &lp, nullptr).ok());
  std::vector<int32_t> deep(17, 3);
  std::vector<int> deep_parents(17);
  for (int i = 0; i < 17; ++i) deep_parents[i] = i - 1;
  const std::vector<int> deep_len = {17};
  EXPECT_EQ(m.Forward({deep, deep_len, deep_parents}, &lp, nullptr).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::learner

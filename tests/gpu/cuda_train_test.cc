// The CUDA training backend (common/cuda/cuda_train.h) against the CPU one (learner/
// train_backend.h, TrainModel + AdamW in fp32): forward logp and entropy, gradients, one AdamW
// step and a few trainer steps, on random small models (both RoPE layouts, GQA, tied and
// untied embeddings, q/k/v biases with q/k norms) and on stories260K.
// Tolerances: the device rounds weights and activations to bf16 before every GEMM, so logp
// and entropy agree within bf16 error (max |diff| 0.05, relative L2 2e-2); gradients by
// direction (cosine > 0.999) and size (relative L2 error < 2e-2); AdamW from the same gradient
// is fp32 on both sides (1e-6).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <vector>

#include "common/compute/train_backend.h"
#include "common/model/llama2c.h"
#include "common/model/weights.h"
#include "common/testing/paths.h"
#include "learner/service/trainer.h"
#include "learner/train_backend.h"
#include "tests/gpu/gpu_test_util.h"

namespace treepo::cuda {
namespace {

using compute::TrainBackend;
using compute::TrainBatch;

double RelErr(std::span<const float> got, std::span<const float> want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

double Cosine(std::span<const float> a, std::span<const float> b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(std::max(aa * bb, 1e-300));
}

double MaxAbsDiff(std::span<const float> a, std::span<const float> b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

model::ModelWeights RandomModel(model::RopeLayout layout, bool tied, uint64_t seed) {
  model::ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 160;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 97;
  c.max_seq_len = 128;
  c.rope_layout = layout;
  c.tied_embeddings = tied;
  auto w = model::ModelWeights::Random(c, seed);
  EXPECT_TRUE(w.ok());
  // Norm weights away from 1 so their gradients matter.
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> nd(0.0f, 0.2f);
  for (const model::TensorInfo& t : w->layout.tensors()) {
    if (t.shape.size() == 1) {
      for (size_t i = t.offset; i < t.offset + t.numel; ++i) w->data[i] += nd(rng);
    }
  }
  return std::move(*w);
}

struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int> lens;
  std::vector<int> parents;  // empty: plain sequences
  std::vector<float> dlogp, dent;
  TrainBatch view() const { return {tokens, lens, parents}; }
};

Batch RandomBatch(int vocab, std::vector<int> lens, uint32_t seed) {
  std::mt19937 rng(seed);
  Batch b;
  b.lens = std::move(lens);
  for (int n : b.lens) {
    for (int i = 0; i < n; ++i) b.tokens.push_back(static_cast<int32_t>(rng() % vocab));
  }
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t r = 0; r < b.tokens.size(); ++r) {
    b.dlogp.push_back(u(rng) / b.tokens.size());
    b.dent.push_back(0.1f * u(rng) / b.tokens.size());
  }
  return b;
}

// Token trees of `lens` rows: each row's parent a random earlier row of its tree (several
// children per row, depths up to the length).
Batch RandomTreeBatch(int vocab, std::vector<int> lens, uint32_t seed) {
  Batch b = RandomBatch(vocab, lens, seed);
  std::mt19937 rng(seed + 1);
  for (int n : lens) {
    for (int i = 0; i < n; ++i) {
      b.parents.push_back(i == 0 ? -1 : static_cast<int>(rng() % static_cast<unsigned>(i)));
    }
  }
  return b;
}

learner::AdamWOptions Adam() {
  learner::AdamWOptions o;
  o.lr = 1e-3f;
  o.max_grad_norm = 1.0f;
  return o;
}

// Forward, backward (with an entropy term) and one step from the CPU's gradient, CPU vs device.
void CompareBackends(const model::ModelWeights& w, const Batch& b, const char* what) {
  auto cpu = learner::CreateTrainBackend({"cpu", 0}, w, Adam());
  auto gpu = learner::CreateTrainBackend({"cuda", 0}, w, Adam());
  ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();
  ASSERT_TRUE(gpu.ok()) << gpu.status().ToString();
  EXPECT_EQ((*gpu)->name(), "cuda");
  std::vector<float> lp_c, ent_c, lp_g, ent_g;
  ASSERT_TRUE((*cpu)->Forward(b.view(), &lp_c, &ent_c).ok());
  const Status fs = (*gpu)->Forward(b.view(), &lp_g, &ent_g);
  ASSERT_TRUE(fs.ok()) << fs.ToString();
  const double lp_max = MaxAbsDiff(lp_g, lp_c), lp_rel = RelErr(lp_g, lp_c);
  const double ent_max = MaxAbsDiff(ent_g, ent_c), ent_rel = RelErr(ent_g, ent_c);
  EXPECT_LT(lp_max, 0.05) << what;
  EXPECT_LT(lp_rel, 2e-2) << what;
  EXPECT_LT(ent_max, 0.05) << what;
  EXPECT_LT(ent_rel, 2e-2) << what;

  ASSERT_TRUE((*cpu)->Backward(b.dlogp, b.dent).ok());
  const Status bs = (*gpu)->Backward(b.dlogp, b.dent);
  ASSERT_TRUE(bs.ok()) << bs.ToString();
  const std::vector<float> gc((*cpu)->GradientOnHost().begin(), (*cpu)->GradientOnHost().end());
  const std::span<float> gg = (*gpu)->GradientOnHost();
  const double cos = Cosine(gg, gc), rel = RelErr(gg, gc);
  EXPECT_GT(cos, 0.999) << what;
  EXPECT_LT(rel, 2e-2) << what;
  // Per tensor too, so that no small tensor hides in the global figure.
  for (const model::TensorInfo& t : w.layout.tensors()) {
    const std::span<const float> a(gg.data() + t.offset, t.numel), e(gc.data() + t.offset, t.numel);
    EXPECT_GT(Cosine(a, e), 0.99) << what << ": " << t.name;
  }
  std::printf("%s: logp max %.3g rel %.3g | entropy max %.3g rel %.3g | grad cos %.6f rel %.3g\n",
              what, lp_max, lp_rel, ent_max, ent_rel, cos, rel);

  // One AdamW step from the same (the CPU's) gradient.
  std::copy(gc.begin(), gc.end(), gg.begin());
  ASSERT_TRUE((*gpu)->GradientFromHost().ok());
  auto sc = (*cpu)->Step();
  auto sg = (*gpu)->Step();
  ASSERT_TRUE(sc.ok() && sg.ok());
  EXPECT_NEAR(sg->grad_norm, sc->grad_norm, 1e-5 * sc->grad_norm) << what;
  EXPECT_DOUBLE_EQ(sg->lr, sc->lr);
  EXPECT_LT(MaxAbsDiff((*gpu)->weights().data, (*cpu)->weights().data), 1e-6) << what;
  for (float g : (*gpu)->GradientOnHost()) ASSERT_EQ(g, 0.0f);
  // The state file has AdamW's format and the same moments.
  const std::string dir = ::treepo::testing::FreshTempDir("cuda_train_opt");
  ASSERT_TRUE((*gpu)->SaveOptimizer(dir + "/opt.safetensors").ok());
  ASSERT_TRUE((*cpu)->LoadOptimizer(dir + "/opt.safetensors").ok());
  EXPECT_EQ((*cpu)->optimizer_step(), 1);
  std::filesystem::remove_all(dir);
}

TEST(CudaTrainTest, RandomModelsMatchTheCpuLearner) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  for (const auto layout : {model::RopeLayout::kAdjacentPairs, model::RopeLayout::kRotateHalf}) {
    for (const bool tied : {true, false}) {
      const model::ModelWeights w = RandomModel(layout, tied, tied ? 3 : 4);
      const Batch b = RandomBatch(w.config.vocab_size, {37, 1, 90, 12}, 9);
      CompareBackends(w, b,
                      layout == model::RopeLayout::kAdjacentPairs
                          ? (tied ? "adjacent/tied" : "adjacent/untied")
                          : (tied ? "half/tied" : "half/untied"));
    }
  }
}

// Qwen-style: q/k/v biases, Qwen3's per-head q/k norms, head_size != dim / heads.
TEST(CudaTrainTest, BiasAndQkNormModelMatchesTheCpuLearner) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  model::ModelConfig c;
  c.dim = 48;
  c.hidden_dim = 96;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 1;
  c.head_size = 16;
  c.vocab_size = 61;
  c.max_seq_len = 64;
  c.rope_layout = model::RopeLayout::kRotateHalf;
  c.tied_embeddings = true;
  c.qkv_bias = true;
  c.qk_norm = true;
  auto w = model::ModelWeights::Random(c, 12);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.2f);
  for (const model::TensorInfo& t : w->layout.tensors()) {
    if (t.shape.size() == 1) {
      for (size_t i = t.offset; i < t.offset + t.numel; ++i) w->data[i] += nd(rng);
    }
  }
  CompareBackends(*w, RandomBatch(c.vocab_size, {30, 2, 17}, 4), "bias/qk-norm/GQA 4:1");
}

TEST(CudaTrainTest, Stories260KMatchesTheCpuLearner) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const std::filesystem::path path =
      std::filesystem::path(treepo::testing::SharedDir()) / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "needs " << path;
  auto w = model::LoadLlama2cCheckpoint(path.string());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  const Batch b = RandomBatch(w->config.vocab_size, {200, 56, 3}, 5);
  CompareBackends(*w, b, "stories260K");
}

// Tree-packed batches (attention over each row's ancestors, outputs at the predicted rows,
// rows with several children), and bad inputs refused.
TEST(CudaTrainTest, TreeBatchesMatchTheCpuLearner) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  for (const bool tied : {true, false}) {
    const model::ModelWeights w = RandomModel(model::RopeLayout::kRotateHalf, tied, 21);
    CompareBackends(w, RandomTreeBatch(w.config.vocab_size, {40, 1, 70}, 3),
                    tied ? "tree/tied" : "tree/untied");
  }
  const model::ModelWeights w = RandomModel(model::RopeLayout::kAdjacentPairs, true, 1);
  auto gpu = learner::CreateTrainBackend({"cuda", 0}, w, Adam());
  ASSERT_TRUE(gpu.ok()) << gpu.status().ToString();
  EXPECT_TRUE((*gpu)->runs_tree_batches());
  std::vector<float> lp;
  const std::vector<int32_t> bad = {1, 500};
  EXPECT_EQ((*gpu)->Forward({bad, std::vector<int>{2}}, &lp, nullptr).code(),
            StatusCode::kInvalidArgument);
  const std::vector<int32_t> ok = {1, 2, 3};
  EXPECT_EQ(
      (*gpu)->Forward({ok, std::vector<int>{3}, std::vector<int>{-1, 2, 0}}, &lp, nullptr).code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ((*gpu)->Backward(std::vector<float>(2), {}).code(), StatusCode::kFailedPrecondition);
}

// The ppo_clip trainer on both backends, three steps on the same batch, with and without tree
// packing: the same losses within bf16 error and weights that moved the same way.
TEST(CudaTrainTest, TrainerStepsMatchTheCpuTrainer) {
  TREEPO_SKIP_WITHOUT_CUDA_DEVICE();
  const model::ModelWeights w = RandomModel(model::RopeLayout::kRotateHalf, false, 8);
  learner::LearnerBatch batch;
  std::mt19937 rng(2);
  // Three trees of two leaves; a tree's leaves share its prompt and the first 6 response
  // tokens, so packing merges them.
  std::vector<int32_t> prefix;
  for (int i = 0; i < 6; ++i) {
    learner::TrainSequence s;
    const int n = 20 + 7 * i;
    if (i % 2 == 0) {
      prefix.clear();
      for (int j = 0; j < 11; ++j) prefix.push_back(static_cast<int32_t>(rng() % 97));
    }
    s.tokens = prefix;
    while (static_cast<int>(s.tokens.size()) < n) {
      s.tokens.push_back(static_cast<int32_t>(rng() % 97));
    }
    s.prompt_len = 5;
    s.advantages.assign(n - 5, i % 2 == 0 ? 1.0f : -0.5f);
    s.rollout_logp.assign(n - 5, -4.5f);
    s.versions.assign(n - 5, 0);
    s.tree = static_cast<size_t>(i / 2);
    batch.response_tokens += n - 5;
    batch.sequences.push_back(s);
  }
  for (const bool packed : {false, true}) {
    SCOPED_TRACE(packed ? "tree-packed" : "per leaf");
    learner::TrainerOptions o;
    o.adamw = Adam();
    o.tree_packing = packed;
    o.loss.entropy_coef = 0.01f;
    o.backend = "cpu";
    auto cpu = learner::Trainer::Create(w, o, WeightVersion(0));
    o.backend = "cuda";
    auto gpu = learner::Trainer::Create(w, o, WeightVersion(0));
    ASSERT_TRUE(cpu.ok() && gpu.ok()) << gpu.status().ToString();
    EXPECT_EQ((*gpu)->tree_packed(), packed);
    for (int step = 0; step < 3; ++step) {
      // Sampled by the current weights (on-policy), as a synchronous run's batches are.
      for (learner::TrainSequence& s : batch.sequences) {
        s.versions.assign(s.versions.size(), static_cast<uint64_t>(step));
      }
      auto mc = (*cpu)->Step(batch);
      auto mg = (*gpu)->Step(batch);
      ASSERT_TRUE(mc.ok() && mg.ok()) << mg.status().ToString();
      EXPECT_NEAR(mg->loss, mc->loss, 2e-2 * std::fabs(mc->loss) + 1e-3) << step;
      EXPECT_NEAR(mg->grad_norm, mc->grad_norm, 2e-2 * mc->grad_norm) << step;
      EXPECT_NEAR(mg->entropy_mean, mc->entropy_mean, 2e-2 * mc->entropy_mean) << step;
      std::printf("step %d: loss cpu %.6f cuda %.6f | grad_norm cpu %.6f cuda %.6f\n", step,
                  mc->loss, mg->loss, mc->grad_norm, mg->grad_norm);
    }
    // The weights' updates point the same way.
    std::vector<float> dc(w.data.size()), dg(w.data.size());
    for (size_t i = 0; i < w.data.size(); ++i) {
      dc[i] = (*cpu)->weights().data[i] - w.data[i];
      dg[i] = (*gpu)->weights().data[i] - w.data[i];
    }
    EXPECT_GT(Cosine(dg, dc), 0.99);
    EXPECT_EQ((*gpu)->version(), WeightVersion(3));
  }
}

}  // namespace
}  // namespace treepo::cuda

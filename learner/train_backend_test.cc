// The learner's training seam (common/compute/train_backend.h): the cpu backend computes bit
// for bit what TrainModel + AdamW do over host buffers, the backend option is validated, and
// `cuda` without a device (or without a CUDA build) fails with a clear error.
#include "learner/train_backend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common/compute/decoder_backend.h"
#include "common/config.h"
#include "common/testing/paths.h"
#include "learner/adamw.h"
#include "learner/model_train.h"
#include "learner/service/learner_service.h"
#include "learner/service/learner_test_inputs.h"
#include "learner/service/trainer.h"

namespace treepo::learner {
namespace {

using test_inputs::SmallModel;

AdamWOptions Adam() {
  AdamWOptions o;
  o.lr = 1e-2f;
  o.warmup_steps = 2;
  o.max_grad_norm = 0.5f;  // clipping takes part
  return o;
}

struct Rows {
  std::vector<int32_t> tokens = {1, 5, 3, 9, 2, 4, 4, 7, 10, 0, 6, 33, 21};
  std::vector<int> lens = {6, 1, 6};
  std::vector<int> parents = {-1, 0, 1, 1, 3, 2, -1, -1, 0, 1, 1, 2, 4};
  std::vector<float> dlogp, dent;
  Rows() {
    for (size_t r = 0; r < tokens.size(); ++r) {
      dlogp.push_back(0.5f - 0.1f * r);
      dent.push_back(0.02f * r);
    }
  }
};

// Two forward/backward/step rounds of the backend against TrainModel + AdamW by hand, on a
// plain and on a tree-packed batch: every output, gradient, weight and moment bitwise equal.
TEST(TrainBackendTest, CpuBackendIsTrainModelPlusAdamWBitwise) {
  for (const bool tree : {false, true}) {
    SCOPED_TRACE(tree ? "tree-packed" : "plain");
    const Rows in;
    const compute::TrainBatch batch{
        in.tokens, in.lens, tree ? std::span<const int>(in.parents) : std::span<const int>()};
    model::ModelWeights ref = SmallModel(11);
    auto b = CreateTrainBackend({"cpu", 0}, SmallModel(11), Adam());
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    compute::TrainBackend& backend = **b;
    EXPECT_EQ(backend.name(), "cpu");
    EXPECT_TRUE(backend.runs_tree_batches());
    TrainModel model(&ref);
    AdamW adamw(ref.layout, Adam());
    std::vector<float> grad(ref.layout.total(), 0.0f);
    for (int step = 0; step < 2; ++step) {
      std::vector<float> lp_ref, ent_ref, lp, ent;
      const Status fs = model.Forward(batch, &lp_ref, &ent_ref);
      ASSERT_TRUE(fs.ok()) << fs.ToString();
      ASSERT_TRUE(backend.Forward(batch, &lp, &ent).ok());
      EXPECT_EQ(lp, lp_ref);
      EXPECT_EQ(ent, ent_ref);
      model.Backward(in.dlogp, in.dent, grad.data());
      ASSERT_TRUE(backend.Backward(in.dlogp, in.dent).ok());
      const std::span<float> g = backend.GradientOnHost();
      EXPECT_TRUE(std::equal(g.begin(), g.end(), grad.begin(), grad.end()));
      ASSERT_TRUE(backend.GradientFromHost().ok());
      const StepStats want = adamw.Step(ref.data.data(), grad.data());
      auto got = backend.Step();
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got->grad_norm, want.grad_norm);
      EXPECT_EQ(got->clip_scale, want.clip_scale);
      EXPECT_EQ(got->lr, want.lr);
      EXPECT_EQ(backend.weights().data, ref.data);
      EXPECT_EQ(backend.optimizer_step(), step + 1);
    }
    // The optimiser state file is AdamW's.
    const std::string dir = ::treepo::testing::FreshTempDir("train_backend_state");
    ASSERT_TRUE(backend.SaveOptimizer(dir + "/opt.safetensors").ok());
    AdamW loaded(ref.layout, Adam());
    ASSERT_TRUE(loaded.Load(dir + "/opt.safetensors").ok());
    EXPECT_EQ(loaded.m(), adamw.m());
    EXPECT_EQ(loaded.v(), adamw.v());
    EXPECT_EQ(loaded.step(), 2);
    std::filesystem::remove_all(dir);
  }
}

// Gradient accumulation over micro-batches and ZeroGradient; one backward per forward.
TEST(TrainBackendTest, BackwardAccumulatesUntilStepOrZero) {
  const Rows in;
  const compute::TrainBatch batch{in.tokens, in.lens};
  auto b = CreateTrainBackend({"cpu", 0}, SmallModel(3), Adam());
  ASSERT_TRUE(b.ok());
  std::vector<float> lp;
  ASSERT_TRUE((*b)->Forward(batch, &lp, nullptr).ok());
  ASSERT_TRUE((*b)->Backward(in.dlogp, {}).ok());
  const std::vector<float> once((*b)->GradientOnHost().begin(), (*b)->GradientOnHost().end());
  // A backward consumes its forward.
  EXPECT_EQ((*b)->Backward(in.dlogp, {}).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*b)->Forward(batch, &lp, nullptr).ok());
  ASSERT_TRUE((*b)->Backward(in.dlogp, {}).ok());
  const std::span<float> twice = (*b)->GradientOnHost();
  // Equal up to rounding: a parameter's gradient is a sum of several terms.
  for (size_t i = 0; i < once.size(); ++i) {
    ASSERT_NEAR(twice[i], 2.0f * once[i], 1e-6f * (1.0f + std::fabs(once[i]))) << i;
  }
  (*b)->ZeroGradient();
  for (float g : (*b)->GradientOnHost()) ASSERT_EQ(g, 0.0f);
}

TEST(TrainBackendTest, MisuseIsRefusedWithClearErrors) {
  const Rows in;
  auto b = CreateTrainBackend({"cpu", 0}, SmallModel(3), Adam());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->Backward(in.dlogp, {}).code(), StatusCode::kFailedPrecondition);
  std::vector<float> lp;
  ASSERT_TRUE((*b)->Forward({in.tokens, in.lens}, &lp, nullptr).ok());
  const Status st = (*b)->Backward(std::vector<float>(3, 0.0f), {});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("13 rows"), std::string::npos) << st.message();
  const std::vector<int32_t> bad = {1, 99};
  EXPECT_EQ((*b)->Forward({bad, std::vector<int>{2}}, &lp, nullptr).code(),
            StatusCode::kInvalidArgument);

  // A gradient backend has no optimiser; it reads the caller's weights in place.
  auto w = std::make_shared<model::ModelWeights>(SmallModel(3));
  auto g = CreateGradientBackend({"cpu", 0}, w);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(&(*g)->weights(), w.get());
  EXPECT_EQ((*g)->Step().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*g)->SaveOptimizer("unused").code(), StatusCode::kFailedPrecondition);

  AdamWOptions bad_adam;
  bad_adam.beta1 = 1.5f;
  EXPECT_EQ(CreateTrainBackend({"cpu", 0}, SmallModel(3), bad_adam).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(TrainBackendTest, BackendNamesAreValidated) {
  auto b = CreateTrainBackend({"tpu", 0}, SmallModel(3), Adam());
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("tpu"), std::string::npos);

  TrainerOptions o;
  o.backend = "gpu";
  const Status st = o.Validate();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("learner.backend"), std::string::npos) << st.message();
  o.backend = "cpu";
  o.device = -1;
  EXPECT_NE(o.Validate().message().find("learner.device"), std::string::npos);

  // The config keys reach the options.
  Config config;
  ASSERT_TRUE(config.Set("learner.backend=cpu").ok());
  ASSERT_TRUE(config.Set("learner.device=2").ok());
  LearnerOptions lo;
  ASSERT_TRUE(LoadLearnerOptions(config, "learner.", &lo).ok());
  EXPECT_EQ(lo.trainer.backend, "cpu");
  EXPECT_EQ(lo.trainer.device, 2);
  // auto runs (cpu here without a device).
  TrainerOptions a;
  auto t = Trainer::Create(SmallModel(3), a, WeightVersion(0));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  if (compute::CudaDeviceCount() == 0) {
    EXPECT_EQ((*t)->backend().name(), "cpu");
  }
}

// cuda on a machine without a device, or in a build without CUDA: a clear error naming the
// key, for the trainer and the plain factory alike.
TEST(TrainBackendTest, CudaWithoutDeviceFailsCleanly) {
  if (compute::CudaDeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  auto b = CreateTrainBackend({"cuda", 0}, SmallModel(3), Adam());
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(b.status().code() == StatusCode::kFailedPrecondition ||
              b.status().code() == StatusCode::kUnimplemented)
      << b.status().ToString();
  EXPECT_NE(b.status().message().find("backend 'cuda'"), std::string::npos);
  auto g = CreateGradientBackend({"cuda", 0}, std::make_shared<model::ModelWeights>(SmallModel(3)));
  EXPECT_FALSE(g.ok());
  // The device factory itself, past the name check: no device (or no CUDA build).
  const AdamWOptions adam = Adam();
  auto d = compute::CreateCudaTrainBackend(0, std::make_shared<model::ModelWeights>(SmallModel(3)),
                                           &adam);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.status().code() == StatusCode::kFailedPrecondition ||
              d.status().code() == StatusCode::kUnimplemented)
      << d.status().ToString();
  EXPECT_EQ(compute::CreateCudaTrainBackend(0, nullptr, &adam).status().code(),
            StatusCode::kInvalidArgument);
  TrainerOptions o;
  o.backend = "cuda";
  auto t = Trainer::Create(SmallModel(3), o, WeightVersion(0));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("learner.backend = cuda"), std::string::npos)
      << t.status().message();
}

}  // namespace
}  // namespace treepo::learner

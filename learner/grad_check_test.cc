// Gradients of the training backward against the PyTorch oracle
// (tests/reference/gen_grad_reference.py): relative error per tensor below 1e-4.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/model/llama2c.h"
#include "common/model/safetensors.h"
#include "common/testing/paths.h"
#include "learner/nll_grad.h"

namespace treepo::learner {
namespace {

using testing::SharedDir;
using testing::SourceDir;

void CompareWithReference(const model::ModelWeights& w, const std::string& tokens_file,
                          const std::string& ref_file) {
  std::map<std::string, std::string> meta;
  auto ref = model::LoadSafetensors(ref_file, &meta);
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  const int prompt_len = std::stoi(meta.at("prompt_len"));
  auto tokens = ReadTokenFile(tokens_file, w.config.vocab_size);
  ASSERT_TRUE(tokens.ok()) << tokens.status().message();
  auto ours = ComputeNllGradients(w, *tokens, prompt_len);
  ASSERT_TRUE(ours.ok()) << ours.status().message();
  EXPECT_NEAR(ours->loss, std::stod(meta.at("loss")), 1e-4 * std::abs(std::stod(meta.at("loss"))));
  ASSERT_EQ(ours->grads.size(), ref->size());
  double worst = 0.0;
  std::string worst_name;
  for (const auto& [name, g] : ours->grads) {
    auto it = ref->find(name);
    ASSERT_NE(it, ref->end()) << name;
    ASSERT_EQ(g.shape, it->second.shape) << name;
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < g.data.size(); ++i) {
      const double d = static_cast<double>(g.data[i]) - it->second.data[i];
      diff += d * d;
      norm += static_cast<double>(it->second.data[i]) * it->second.data[i];
    }
    const double rel = std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
    EXPECT_LT(rel, 1e-4) << name;
    if (rel > worst) {
      worst = rel;
      worst_name = name;
    }
  }
  std::printf("worst relative error %.3g (%s) over %zu tensors\n", worst, worst_name.c_str(),
              ours->grads.size());
}

TEST(GradCheckTest, Stories260kMatchesPyTorch) {
  const std::string path = SharedDir() + "/models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no shared model at " << path;
  auto w = model::LoadLlama2cCheckpoint(path);
  ASSERT_TRUE(w.ok()) << w.status().message();
  const std::string data = SourceDir() + "/tests/data/";
  CompareWithReference(*w, data + "grad_stories260k_tokens.txt",
                       data + "grad_stories260k.safetensors");
}

TEST(GradCheckTest, RandomQkvBiasRotateHalfUntiedMatchesPyTorch) {
  const std::string data = SourceDir() + "/tests/data/";
  auto w = model::LoadHfModel(data + "grad_random_model");
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(w->config.qkv_bias);
  ASSERT_FALSE(w->config.tied_embeddings);
  ASSERT_EQ(w->config.rope_layout, model::RopeLayout::kRotateHalf);
  CompareWithReference(*w, data + "grad_random_tokens.txt", data + "grad_random.safetensors");
}

TEST(GradCheckTest, TokenFileValidation) {
  const std::string path = ::treepo::testing::FreshTempDir("grad_tokens") + "/tokens.txt";
  { std::ofstream(path) << "1 2 x3\n"; }
  EXPECT_EQ(ReadTokenFile(path, 10).status().code(), StatusCode::kInvalidArgument);
  { std::ofstream(path) << "1 2\n 10\n"; }
  EXPECT_EQ(ReadTokenFile(path, 10).status().code(), StatusCode::kInvalidArgument);
  { std::ofstream(path) << "1 2\n 9\n"; }
  auto ok = ReadTokenFile(path, 10);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, (std::vector<int32_t>{1, 2, 9}));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace treepo::learner

// Gradients of the training backward against the PyTorch oracle
// (tests/reference/gen_grad_reference.py): relative error per tensor below 1e-4.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

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

// Random tiny Qwen2 (biases), Qwen2 + YaRN, Qwen3 (q/k norms, head_dim != hidden / heads,
// BF16 weights), Llama 3.1 (llama3 RoPE scaling) and Llama + linear scaling models
// (tests/reference/gen_hf_arch_reference.py).
class HfArchGradCheckTest : public ::testing::TestWithParam<const char*> {};

TEST_P(HfArchGradCheckTest, MatchesPyTorch) {
  const std::string dir = SourceDir() + "/tests/data/hf_arch/" + GetParam();
  auto w = model::LoadHfModel(dir);
  ASSERT_TRUE(w.ok()) << w.status().message();
  std::ifstream in(dir + "/reference.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  const std::string tokens_file =
      ::treepo::testing::FreshTempDir(std::string("hf_arch_grad_") + GetParam()) + "/tokens.txt";
  {
    std::ofstream out(tokens_file);
    for (int t : j["grad_tokens"]) out << t << " ";
  }
  CompareWithReference(*w, tokens_file, dir + "/grads.safetensors");
}

INSTANTIATE_TEST_SUITE_P(Architectures, HfArchGradCheckTest,
                         ::testing::Values("qwen2", "qwen2_yarn", "qwen3", "llama31",
                                           "llama_linear"));

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

namespace treepo::learner {
namespace {

double RelativeError(const model::NamedTensor& a, const model::NamedTensor& b) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    const double d = static_cast<double>(a.data[i]) - b.data[i];
    diff += d * d;
    norm += static_cast<double>(b.data[i]) * b.data[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// Tree-packed gradients (`treepo grad --trees`) against the per-path PyTorch oracle
// (tests/reference/gen_tree_grad_reference.py) and against the C++ per-path computation.
void CompareTreeWithReference(const model::ModelWeights& w, const std::string& trees_file,
                              const std::string& ref_file) {
  std::map<std::string, std::string> meta;
  auto ref = model::LoadSafetensors(ref_file, &meta);
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  auto trees = ReadTreeFile(trees_file);
  ASSERT_TRUE(trees.ok()) << trees.status().message();
  auto packed = ComputeTreeNllGradients(w, *trees, /*packed=*/true);
  ASSERT_TRUE(packed.ok()) << packed.status().message();
  auto paths = ComputeTreeNllGradients(w, *trees, /*packed=*/false);
  ASSERT_TRUE(paths.ok()) << paths.status().message();
  EXPECT_EQ(packed->leaves, std::stoll(meta.at("leaves")));
  EXPECT_EQ(packed->path_tokens, std::stoll(meta.at("path_tokens")));
  EXPECT_EQ(paths->rows, paths->path_tokens);
  EXPECT_LT(packed->rows, packed->path_tokens / 2);  // shared prompt and prefixes run once
  const double loss = std::stod(meta.at("loss"));
  EXPECT_NEAR(packed->loss, loss, 1e-4 * std::abs(loss));
  EXPECT_NEAR(paths->loss, loss, 1e-4 * std::abs(loss));
  ASSERT_EQ(packed->grads.size(), ref->size());
  double worst = 0.0, worst_cpp = 0.0;
  for (const auto& [name, g] : packed->grads) {
    auto it = ref->find(name);
    ASSERT_NE(it, ref->end()) << name;
    ASSERT_EQ(g.shape, it->second.shape) << name;
    const double rel = RelativeError(g, it->second);
    EXPECT_LT(rel, 1e-4) << name << " vs PyTorch";
    const double rel_cpp = RelativeError(g, paths->grads.at(name));
    EXPECT_LT(rel_cpp, 1e-5) << name << " vs C++ per path";
    worst = std::max(worst, rel);
    worst_cpp = std::max(worst_cpp, rel_cpp);
  }
  std::printf(
      "%lld rows for %lld path tokens; worst relative error %.3g vs PyTorch, %.3g vs "
      "C++ per path\n",
      static_cast<long long>(packed->rows), static_cast<long long>(packed->path_tokens), worst,
      worst_cpp);
}

TEST(TreeGradCheckTest, Stories260kPackedMatchesPerPathPyTorch) {
  const std::string path = SharedDir() + "/models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no shared model at " << path;
  auto w = model::LoadLlama2cCheckpoint(path);
  ASSERT_TRUE(w.ok()) << w.status().message();
  const std::string data = SourceDir() + "/tests/data/";
  CompareTreeWithReference(*w, data + "grad_tree_stories260k.jsonl",
                           data + "grad_tree_stories260k.safetensors");
}

TEST(TreeGradCheckTest, RandomQkvBiasRotateHalfUntiedPackedMatchesPerPathPyTorch) {
  const std::string data = SourceDir() + "/tests/data/";
  auto w = model::LoadHfModel(data + "grad_random_model");
  ASSERT_TRUE(w.ok()) << w.status().message();
  CompareTreeWithReference(*w, data + "grad_tree_random.jsonl",
                           data + "grad_tree_random.safetensors");
}

TEST(TreeGradCheckTest, RefusesTreesTheModelCannotRun) {
  const std::string data = SourceDir() + "/tests/data/";
  auto w = model::LoadHfModel(data + "grad_random_model");
  ASSERT_TRUE(w.ok());
  auto trees = ReadTreeFile(data + "grad_tree_random.jsonl");
  ASSERT_TRUE(trees.ok());
  std::vector<TreeRecord> t = *trees;
  t[1].prompt_tokens.clear();
  auto r = ComputeTreeNllGradients(*w, t, true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("q1"), std::string::npos);
  t = *trees;
  t[0].prompt_tokens.assign(w->config.max_seq_len, 3);
  r = ComputeTreeNllGradients(*w, t, true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("positions"), std::string::npos);
  t = *trees;
  t[0].nodes[0].tokens[0] = w->config.vocab_size;
  EXPECT_EQ(ComputeTreeNllGradients(*w, t, true).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::learner

// The engine's paged forward on random tiny Qwen2, Qwen3 and Llama 3.1 models (and YaRN and
// linear RoPE scaling) against the float64 PyTorch reference
// (tests/data/hf_arch/*/reference.json, from tests/reference/gen_hf_arch_reference.py).
//
// Tolerance: per logits row, max_i |ours_i - ref_i| <= 1e-4 * max(1, max_i |ref_i|).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/model/safetensors.h"
#include "common/testing/paths.h"
#include "worker/engine/engine.h"

namespace treepo::worker {
namespace {

struct Sequence {
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // [tokens, vocab]
};

class HfArchEngineTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    const std::string dir = testing::SourceDir() + "/tests/data/hf_arch/" + GetParam();
    auto w = model::LoadHfModel(dir, /*keep_16bit=*/true);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    weights_ = std::make_shared<const model::ModelWeights>(std::move(w).value());
    std::ifstream in(dir + "/reference.json");
    const nlohmann::json j = nlohmann::json::parse(in);
    for (const auto& s : j["sequences"]) {
      Sequence seq;
      seq.tokens = s["tokens"].get<std::vector<int32_t>>();
      for (const auto& row : s["logits"]) {
        for (const auto& v : row) seq.logits.push_back(v.get<float>());
      }
      seqs_.push_back(std::move(seq));
    }
  }

  // Submits every sequence at once and checks every position's logits.
  void CheckLogits(int page_size, int max_step_tokens) {
    EngineOptions o;
    o.kv.page_size = page_size;
    o.kv.num_pages = 64;
    o.max_step_tokens = max_step_tokens;
    auto e = Engine::Create(weights_, WeightVersion(0), o);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    for (size_t i = 0; i < seqs_.size(); ++i) {
      SegmentRequest r;
      r.task = TaskId(i);
      r.prefix_tokens = seqs_[i].tokens;
      r.children = {NodeId(i + 1)};
      r.seeds = {0};
      r.max_new_tokens = 1;
      r.sampling.temperature = 0.0f;
      r.sampling.stop_at_eos = false;
      r.return_logits = true;
      r.keep_kv = false;
      ASSERT_TRUE((*e)->Submit(r).ok());
    }
    const int vocab = weights_->config.vocab_size;
    std::vector<SegmentResult> results = (*e)->RunUntilIdle();
    ASSERT_EQ(results.size(), seqs_.size());
    float worst = 0.0f;
    for (const SegmentResult& r : results) {
      const Sequence& ref = seqs_[r.task.value()];
      std::vector<float> ours = r.prefix_logits;
      ours.insert(ours.end(), r.children[0].logits.begin(), r.children[0].logits.end());
      ASSERT_EQ(ours.size(), ref.logits.size());
      for (size_t row = 0; row < ref.tokens.size(); ++row) {
        float diff = 0.0f, scale = 1.0f;
        for (int v = 0; v < vocab; ++v) {
          const size_t i = row * vocab + v;
          diff = std::max(diff, std::abs(ours[i] - ref.logits[i]));
          scale = std::max(scale, std::abs(ref.logits[i]));
        }
        EXPECT_LE(diff / scale, 1e-4f)
            << GetParam() << " sequence " << r.task.value() << " row " << row;
        worst = std::max(worst, diff / scale);
      }
    }
    std::printf("%s: worst row error %.3g\n", GetParam(), worst);
  }

  std::shared_ptr<const model::ModelWeights> weights_;
  std::vector<Sequence> seqs_;
};

TEST_P(HfArchEngineTest, LogitsMatchPyTorchInOneChunk) { CheckLogits(16, 512); }

TEST_P(HfArchEngineTest, LogitsMatchPyTorchOverPrefillChunks) { CheckLogits(5, 9); }

INSTANTIATE_TEST_SUITE_P(Architectures, HfArchEngineTest,
                         ::testing::Values("qwen2", "qwen2_yarn", "qwen3", "llama31",
                                           "llama_linear"));

// The Qwen3 checkpoint is BF16: kept 16-bit its logits are bitwise those of its fp32 widening
// (the other checkpoints are F32 and load as fp32).
TEST(HfArchStorageTest, Bf16WeightsGiveTheLogitsOfTheirFp32Widening) {
  const std::string dir = testing::SourceDir() + "/tests/data/hf_arch/qwen3";
  auto half = model::LoadHfModel(dir, /*keep_16bit=*/true);
  ASSERT_TRUE(half.ok()) << half.status().ToString();
  ASSERT_EQ(half->dtype, model::WeightDtype::kBF16);
  EXPECT_EQ(*model::StoredWeightDtype(dir), model::WeightDtype::kBF16);  // from the header alone
  EXPECT_EQ(*model::StoredWeightDtype(testing::SourceDir() + "/tests/data/hf_arch/qwen2"),
            model::WeightDtype::kF32);
  EXPECT_LT(half->StorageBytes(), half->layout.total() * 2 + 4096);
  auto full = model::LoadHfModel(dir);
  ASSERT_TRUE(full.ok());
  ASSERT_EQ(full->dtype, model::WeightDtype::kF32);
  std::vector<std::vector<float>> logits;
  for (auto* w : {&*half, &*full}) {
    EngineOptions o;
    o.kv.page_size = 8;
    o.kv.num_pages = 32;
    auto e = Engine::Create(std::make_shared<const model::ModelWeights>(*w), WeightVersion(0), o);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    SegmentRequest r;
    r.task = TaskId(1);
    r.prefix_tokens = {1, 5, 9, 33, 60, 2, 7, 71, 12};
    r.children = {NodeId(2), NodeId(3)};
    r.seeds = {1, 2};
    r.max_new_tokens = 12;
    r.sampling.stop_at_eos = false;
    r.return_logits = true;
    ASSERT_TRUE((*e)->Submit(r).ok());
    auto results = (*e)->RunUntilIdle();
    ASSERT_EQ(results.size(), 1u);
    std::vector<float> all = results[0].prefix_logits;
    for (const auto& c : results[0].children)
      all.insert(all.end(), c.logits.begin(), c.logits.end());
    logits.push_back(std::move(all));
  }
  EXPECT_EQ(logits[0], logits[1]);
  // Saved again, the checkpoint keeps its dtype and its bits.
  const std::string again = testing::FreshTempDir("hf_arch_bf16_save");
  ASSERT_TRUE(model::SaveHfModel(*half, again).ok());
  auto reread = model::LoadHfModel(again, /*keep_16bit=*/true);
  ASSERT_TRUE(reread.ok()) << reread.status().ToString();
  EXPECT_EQ(reread->dtype, model::WeightDtype::kBF16);
  EXPECT_EQ(reread->half, half->half);
}

TEST(HfArchConfigTest, ReadsWhatEachArchitectureNeeds) {
  const std::string data = testing::SourceDir() + "/tests/data/hf_arch/";
  auto qwen3 = model::LoadHfConfig(data + "qwen3/config.json");
  ASSERT_TRUE(qwen3.ok()) << qwen3.status().ToString();
  EXPECT_TRUE(qwen3->qk_norm);
  EXPECT_FALSE(qwen3->qkv_bias);
  EXPECT_EQ(qwen3->head_dim(), 16);
  EXPECT_EQ(qwen3->q_dim(), 64);
  EXPECT_TRUE(qwen3->IsEos(2));
  EXPECT_TRUE(qwen3->IsEos(5));
  EXPECT_FALSE(qwen3->IsEos(3));
  auto llama = model::LoadHfConfig(data + "llama31/config.json");
  ASSERT_TRUE(llama.ok()) << llama.status().ToString();
  EXPECT_EQ(llama->rope_scaling.type, model::RopeScalingType::kLlama3);
  EXPECT_EQ(llama->rope_scaling.original_max_position, 64);
  EXPECT_EQ(llama->eos_ids, (std::vector<int>{2, 7, 9}));
  auto qwen2 = model::LoadHfConfig(data + "qwen2/config.json");
  ASSERT_TRUE(qwen2.ok()) << qwen2.status().ToString();
  EXPECT_TRUE(qwen2->qkv_bias);
  EXPECT_TRUE(qwen2->tied_embeddings);
  auto yarn = model::LoadHfConfig(data + "qwen2_yarn/config.json");
  ASSERT_TRUE(yarn.ok()) << yarn.status().ToString();
  EXPECT_EQ(yarn->rope_scaling.type, model::RopeScalingType::kYarn);
  EXPECT_NEAR(yarn->rope_scaling.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-12);
}

}  // namespace
}  // namespace treepo::worker

// The engine's paged path on the real stories260K checkpoint against the PyTorch reference
// (tests/data/stories260k_reference.json, from tests/reference/gen_stories260k_reference.py).
//
// Tolerance: per logits row, max_i |ours_i - ref_i| / max_i |ref_i| < 1e-4.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/model/llama2c.h"
#include "common/model/tokenizer.h"
#include "common/testing/paths.h"
#include "worker/engine/engine.h"

namespace treepo::worker {
namespace {

namespace fs = std::filesystem;

fs::path SourceDir() { return testing::SourceDir(); }
fs::path SharedDir() { return testing::SharedDir(); }

struct Reference {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<float>> logits;  // [tokens, vocab] per prompt
  std::vector<int32_t> greedy;
};

class Stories260kEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path model = SharedDir() / "models/stories260K/stories260K.bin";
    const fs::path ref = SourceDir() / "tests/data/stories260k_reference.json";
    if (!fs::exists(model) || !fs::exists(ref)) {
      GTEST_SKIP() << "needs " << model << " and " << ref
                   << " (set TREEPO_SHARED_DIR / TREEPO_SOURCE_DIR)";
    }
    auto w = model::LoadLlama2cCheckpoint(model.string());
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    weights_ = std::make_shared<const model::ModelWeights>(std::move(w).value());
    tokenizer_path_ = (SharedDir() / "models/stories260K/tok512.bin").string();
    std::ifstream in(ref);
    const nlohmann::json j = nlohmann::json::parse(in);
    for (const auto& p : j["prompts"]) {
      ref_.texts.push_back(p["text"].get<std::string>());
      ref_.tokens.push_back(p["tokens"].get<std::vector<int32_t>>());
      std::vector<float> flat;
      for (const auto& row : p["logits"]) {
        for (const auto& v : row) flat.push_back(v.get<float>());
      }
      ref_.logits.push_back(std::move(flat));
    }
    ref_.greedy = j["greedy"]["tokens"].get<std::vector<int32_t>>();
  }

  std::unique_ptr<Engine> MakeEngine(int page_size, int max_step_tokens) {
    EngineOptions o;
    o.kv.page_size = page_size;
    o.kv.num_pages = 256;
    o.max_step_tokens = max_step_tokens;
    auto e = Engine::Create(weights_, WeightVersion(0), o);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return std::move(e).value();
  }

  // Submits every prompt at once (one batch), then checks every position's logits.
  void CheckLogits(int page_size, int max_step_tokens) {
    auto e = MakeEngine(page_size, max_step_tokens);
    for (size_t i = 0; i < ref_.tokens.size(); ++i) {
      SegmentRequest r;
      r.task = TaskId(i);
      r.prefix_tokens = ref_.tokens[i];
      r.children = {NodeId(i + 1)};
      r.seeds = {0};
      r.max_new_tokens = 1;
      r.sampling.temperature = 0.0f;
      r.return_logits = true;
      r.keep_kv = false;
      ASSERT_TRUE(e->Submit(r).ok());
    }
    const int vocab = weights_->config.vocab_size;
    int steps = 0;
    std::vector<SegmentResult> results;
    while (!e->Idle()) {
      for (auto& r : e->Step()) results.push_back(std::move(r));
      ++steps;
    }
    ASSERT_EQ(results.size(), ref_.tokens.size());
    for (const SegmentResult& r : results) {
      const size_t i = r.task.value();
      std::vector<float> ours = r.prefix_logits;
      ours.insert(ours.end(), r.children[0].logits.begin(), r.children[0].logits.end());
      ASSERT_EQ(ours.size(), ref_.logits[i].size()) << "prompt " << i;
      for (size_t row = 0; row < ref_.tokens[i].size(); ++row) {
        float diff = 0.0f, scale = 0.0f;
        for (int v = 0; v < vocab; ++v) {
          diff = std::max(diff, std::abs(ours[row * vocab + v] - ref_.logits[i][row * vocab + v]));
          scale = std::max(scale, std::abs(ref_.logits[i][row * vocab + v]));
        }
        EXPECT_LT(diff / scale, 1e-4f) << "prompt " << i << " row " << row;
      }
    }
    if (max_step_tokens < 62) EXPECT_GT(steps, 62 / max_step_tokens);  // prompts were chunked
    EXPECT_EQ(e->Load().pages.used, 0);
  }

  std::shared_ptr<const model::ModelWeights> weights_;
  std::string tokenizer_path_;
  Reference ref_;
};

TEST_F(Stories260kEngineTest, LogitsMatchReferenceInOneChunk) { CheckLogits(16, 512); }

TEST_F(Stories260kEngineTest, LogitsMatchReferenceOverPrefillChunks) {
  CheckLogits(16, 7);
  CheckLogits(5, 13);
}

TEST_F(Stories260kEngineTest, TokenizerEncodesReferencePrompts) {
  auto tok = model::Tokenizer::LoadLlama2c(tokenizer_path_, weights_->config.vocab_size);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  for (size_t i = 0; i < ref_.texts.size(); ++i) {
    EXPECT_EQ(tok->Encode(ref_.texts[i], true), ref_.tokens[i]) << "prompt " << i;
  }
}

TEST_F(Stories260kEngineTest, GreedyFromBosMatchesReference) {
  auto e = MakeEngine(16, 512);
  SegmentRequest r;
  r.task = TaskId(1);
  r.parent = NodeId(1);
  r.prefix_tokens = {weights_->config.bos_id};
  r.children = {NodeId(2)};
  r.seeds = {0};
  r.max_new_tokens = static_cast<int>(ref_.greedy.size());
  r.sampling.temperature = 0.0f;
  r.sampling.stop_at_eos = false;
  ASSERT_TRUE(e->Submit(r).ok());
  auto results = e->RunUntilIdle();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].children[0].tokens, ref_.greedy);
  // Forking the BOS node again later gives the same greedy path.
  r.task = TaskId(2);
  r.children = {NodeId(3)};
  r.prefix_tokens.clear();
  ASSERT_TRUE(e->Submit(r).ok());
  EXPECT_EQ(e->RunUntilIdle()[0].children[0].tokens, ref_.greedy);
}

}  // namespace
}  // namespace treepo::worker

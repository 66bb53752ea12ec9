#include "common/model/weights.h"

#include <gtest/gtest.h>

namespace treepo::model {
namespace {

ModelConfig Small() {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 40;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 32;
  c.max_seq_len = 64;
  return c;
}

TEST(WeightsTest, LayoutCountsEveryParameterOnce) {
  ModelConfig c = Small();
  ParamLayout tied(c);
  const size_t per_layer = 16 + 16 * 16 + 2 * (8 * 16) + 16 * 16 + 16 + 3 * 40 * 16;
  EXPECT_EQ(tied.total(), 32 * 16 + 2 * per_layer + 16);
  EXPECT_EQ(tied.lm_head(), tied.embed());
  c.tied_embeddings = false;
  c.qkv_bias = true;
  ParamLayout untied(c);
  EXPECT_EQ(untied.total(), tied.total() + 32 * 16 + 2 * (16 + 8 + 8));
  ASSERT_NE(untied.Find("model.layers.1.self_attn.k_proj.bias"), nullptr);
  EXPECT_EQ(untied.Find("model.layers.1.self_attn.k_proj.bias")->numel, 8u);
  EXPECT_EQ(untied.Find("nope"), nullptr);
}

TEST(WeightsTest, RandomIsDeterministicPerSeed) {
  auto a = ModelWeights::Random(Small(), 7);
  auto b = ModelWeights::Random(Small(), 7);
  auto c = ModelWeights::Random(Small(), 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->data, b->data);
  EXPECT_NE(a->data, c->data);
  EXPECT_EQ(a->at(a->layout.final_norm())[0], 1.0f);
}

TEST(WeightsTest, InvalidConfigIsRefused) {
  ModelConfig c = Small();
  c.n_kv_heads = 3;
  auto w = ModelWeights::Zeros(c);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::model

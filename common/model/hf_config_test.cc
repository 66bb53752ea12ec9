// config.json of real models is read as transformers reads it; what would change the model and
// is not supported is refused, naming the key.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/model/safetensors.h"
#include "common/testing/paths.h"

namespace treepo::model {
namespace {

// Writes `config` (and optional siblings) into a fresh directory; returns config.json's path.
std::string WriteConfig(const std::string& name, const nlohmann::json& config,
                        const nlohmann::json& generation = nullptr,
                        const nlohmann::json& tokenizer_config = nullptr) {
  const std::string dir = testing::FreshTempDir("hf_config_" + name);
  std::ofstream(dir + "/config.json") << config.dump(2);
  if (!generation.is_null()) std::ofstream(dir + "/generation_config.json") << generation.dump();
  if (!tokenizer_config.is_null()) {
    std::ofstream(dir + "/tokenizer_config.json") << tokenizer_config.dump();
  }
  return dir + "/config.json";
}

// Qwen3-0.6B's config.json as published.
nlohmann::json Qwen3Config() {
  return nlohmann::json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
    "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
    "vocab_size": 151936})");
}

// Llama-3.2-1B-Instruct's config.json as published.
nlohmann::json Llama32Config() {
  return nlohmann::json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

// Qwen2.5-Math-1.5B-Instruct's config.json as published.
nlohmann::json Qwen25MathConfig() {
  return nlohmann::json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 1536,
    "initializer_range": 0.02, "intermediate_size": 8960, "max_position_embeddings": 4096,
    "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 12,
    "num_hidden_layers": 28, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_theta": 10000, "sliding_window": 4096, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "transformers_version": "4.37.0", "use_cache": true,
    "use_sliding_window": false, "vocab_size": 151936})");
}

TEST(HfConfigTest, ReadsPublishedConfigs) {
  auto q3 = LoadHfConfig(WriteConfig("qwen3", Qwen3Config()));
  ASSERT_TRUE(q3.ok()) << q3.status().ToString();
  EXPECT_TRUE(q3->qk_norm);
  EXPECT_FALSE(q3->qkv_bias);
  EXPECT_EQ(q3->head_dim(), 128);
  EXPECT_EQ(q3->q_dim(), 2048);  // wider than hidden_size 1024
  EXPECT_EQ(q3->kv_dim(), 1024);
  EXPECT_TRUE(q3->tied_embeddings);
  EXPECT_EQ(q3->eos_id, 151645);
  EXPECT_NEAR(q3->ParamCount(), 596e6, 1e6);  // Qwen3-0.6B: 0.6B with the embedding

  auto l = LoadHfConfig(WriteConfig("llama32", Llama32Config()));
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(l->rope_scaling.factor, 32.0);
  EXPECT_EQ(l->rope_scaling.original_max_position, 8192);
  EXPECT_EQ(l->eos_id, 128001);
  EXPECT_EQ(l->eos_ids, (std::vector<int>{128001, 128008, 128009}));
  EXPECT_TRUE(l->IsEos(128009));
  EXPECT_EQ(l->head_size, 0);  // 2048 / 32: no override needed
  EXPECT_EQ(l->max_seq_len, 131072);

  auto q2 = LoadHfConfig(WriteConfig("qwen25math", Qwen25MathConfig()));
  ASSERT_TRUE(q2.ok()) << q2.status().ToString();
  EXPECT_TRUE(q2->qkv_bias);
  EXPECT_FALSE(q2->qk_norm);
  EXPECT_NEAR(q2->ParamCount(), 1.54e9, 0.01e9);
}

// Llama 3.1's frequencies, against transformers' _compute_llama3_parameters written out for
// head_dim 64 and the published settings: wavelengths above 8192 positions divided by 32,
// below 2048 kept, the ones between blended.
TEST(HfConfigTest, Llama3Frequencies) {
  auto c = LoadHfConfig(WriteConfig("llama3_freq", Llama32Config()));
  ASSERT_TRUE(c.ok());
  const std::vector<float> inv = RopeInvFrequencies(*c);
  ASSERT_EQ(inv.size(), 32u);
  for (int i = 0; i < 32; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / 64);
    const double wavelen = 2 * M_PI / base;
    double want = base;
    if (wavelen > 8192) {
      want = base / 32;
    } else if (wavelen >= 2048) {
      const double smooth = (8192 / wavelen - 1) / 3;
      want = (1 - smooth) * base / 32 + smooth * base;
    }
    EXPECT_NEAR(inv[i], want, 1e-6 * want) << i;
  }
}

TEST(HfConfigTest, EndOfGenerationIdsFromTheFilesBeside) {
  nlohmann::json q = Qwen25MathConfig();
  q["eos_token_id"] = 151643;  // <|endoftext|>: the base model's
  const nlohmann::json gen = {{"eos_token_id", {151645, 151643}}};
  const nlohmann::json tok = {
      {"eos_token", "<|im_end|>"},
      {"added_tokens_decoder",
       {{"151643", {{"content", "<|endoftext|>"}}}, {"151645", {{"content", "<|im_end|>"}}}}}};
  auto c = LoadHfConfig(WriteConfig("eos_siblings", q, gen, tok));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->eos_id, 151643);
  EXPECT_EQ(c->eos_ids, (std::vector<int>{151643, 151645}));
  // Only the template's end token beside: still both.
  c = LoadHfConfig(WriteConfig("eos_template", q, nullptr, tok));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->IsEos(151645));
  // An id outside the vocabulary is refused, naming where it came from.
  c = LoadHfConfig(WriteConfig("eos_bad", q, nlohmann::json{{"eos_token_id", 999999}}));
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("generation_config.json"), std::string::npos);
}

TEST(HfConfigTest, UnsupportedKeysAndValuesAreRefusedByName) {
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* expect;  // in the message
  };
  const std::vector<Case> cases = {
      {"quantization_config", {{"quant_method", "gptq"}}, "quantization_config"},
      {"model_type", "mistral", "mistral"},
      {"model_type", "qwen2_moe", "qwen2_moe"},
      {"hidden_act", "gelu", "hidden_act"},
      {"use_sliding_window", true, "use_sliding_window"},
      {"mlp_bias", true, "mlp_bias"},
      {"attention_bias", true, "attention_bias"},
      {"layer_types", {"full_attention", "sliding_attention"}, "sliding_attention"},
      {"rope_scaling", {{"rope_type", "dynamic"}, {"factor", 2.0}}, "dynamic"},
      {"rope_scaling", {{"rope_type", "longrope"}, {"factor", 2.0}}, "longrope"},
      {"rope_scaling", {{"rope_type", "linear"}, {"factor", 2.0}, {"foo", 1}}, "foo"},
      {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}, "low_freq_factor"},
      {"rope_scaling", {{"rope_type", "linear"}}, "factor"},
      {"rope_scaling", {{"rope_type", "linear"}, {"factor", 0.5}}, "factor"},
      {"eos_token_id", nlohmann::json::array(), "eos_token_id"},
      {"head_dim", 7, "head_dim"},
  };
  for (const Case& k : cases) {
    nlohmann::json cfg = Llama32Config();
    cfg[k.key] = k.value;
    auto c = LoadHfConfig(WriteConfig("bad", cfg));
    ASSERT_FALSE(c.ok()) << k.key << " = " << k.value.dump();
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << k.key;
    EXPECT_NE(c.status().message().find(k.expect), std::string::npos)
        << k.key << ": " << c.status().message();
  }
}

TEST(HfConfigTest, SavedConfigsReadBackTheSame) {
  for (const nlohmann::json& src : {Qwen3Config(), Llama32Config(), Qwen25MathConfig()}) {
    auto c = LoadHfConfig(WriteConfig("roundtrip_src", src));
    ASSERT_TRUE(c.ok());
    const std::string out = testing::FreshTempDir("hf_config_roundtrip") + "/config.json";
    ASSERT_TRUE(SaveHfConfig(*c, out).ok());
    auto back = LoadHfConfig(out);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->ToString(), c->ToString());
    EXPECT_EQ(back->eos_ids, c->eos_ids);
    EXPECT_EQ(back->rope_scaling, c->rope_scaling);
  }
  // YaRN with its attention factor from mscale.
  nlohmann::json y = Qwen25MathConfig();
  y["rope_scaling"] = {
      {"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
  auto c = LoadHfConfig(WriteConfig("yarn", y));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_NEAR(c->rope_scaling.attention_factor, 0.1 * std::log(4.0) + 1, 1e-12);
}

}  // namespace
}  // namespace treepo::model

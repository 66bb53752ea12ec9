#include "common/model/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/model/llama2c.h"
#include "common/model/model_test_util.h"

namespace treepo::model {
namespace {

using testing::FreshTempDir;
using testing::ReadFileBytes;
using testing::SharedDir;
using testing::WriteFileBytes;

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

// A safetensors file from a header JSON text and a data buffer.
std::string RawFile(const std::string& header, const std::string& body) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + body;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = FreshTempDir("safetensors_test"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  Status LoadRaw(const std::string& bytes) {
    WriteFileBytes(Path("raw.safetensors"), bytes);
    return LoadSafetensors(Path("raw.safetensors")).status();
  }

  std::string dir_;
};

TEST_F(SafetensorsTest, RoundTripsTensorsAndMetadata) {
  std::map<std::string, NamedTensor> t;
  t["a"] = {{2, 3}, {1, 2, 3, 4, 5, 6.5f}};
  t["scalar"] = {{}, {-7}};
  t["empty"] = {{0, 4}, {}};
  ASSERT_TRUE(SaveSafetensors(Path("x.safetensors"), t, {{"format", "pt"}}).ok());
  const std::string bytes = ReadFileBytes(Path("x.safetensors"));
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  std::map<std::string, std::string> meta;
  auto back = LoadSafetensors(Path("x.safetensors"), &meta);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(back->size(), 3u);
  for (const auto& [name, tensor] : t) {
    EXPECT_EQ(back->at(name).shape, tensor.shape) << name;
    EXPECT_EQ(back->at(name).data, tensor.data) << name;
  }
}

TEST_F(SafetensorsTest, SaveRefusesShapeDataMismatch) {
  std::map<std::string, NamedTensor> t;
  t["a"] = {{2, 3}, {1, 2, 3}};
  EXPECT_EQ(SaveSafetensors(Path("x.safetensors"), t).code(), StatusCode::kInvalidArgument);
}

TEST_F(SafetensorsTest, ReadsF16AndBf16) {
  // F16: 1.0 = 0x3C00, -2.5 = 0xC100, 2^-24 = 0x0001 (subnormal), 65504 = 0x7BFF.
  // BF16: 1.0 = 0x3F80, -0.15625 = 0xBE20.
  const uint16_t f16[4] = {0x3C00, 0xC100, 0x0001, 0x7BFF};
  const uint16_t bf16[2] = {0x3F80, 0xBE20};
  std::string body(reinterpret_cast<const char*>(f16), 8);
  body.append(reinterpret_cast<const char*>(bf16), 4);
  const std::string header = R"({"h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}})";
  WriteFileBytes(Path("h.safetensors"), RawFile(header, body));
  auto t = LoadSafetensors(Path("h.safetensors"));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->at("h").data, (std::vector<float>{1.0f, -2.5f, std::ldexp(1.0f, -24), 65504.0f}));
  EXPECT_EQ(t->at("b").data, (std::vector<float>{1.0f, -0.15625f}));
}

TEST_F(SafetensorsTest, RefusesCorruptFiles) {
  const std::string body(24, '\0');
  auto one = [](const std::string& entry) { return R"({"t":)" + entry + "}"; };
  const std::string good = one(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})");
  ASSERT_TRUE(LoadRaw(RawFile(good, body)).ok());
  struct Case {
    std::string what, bytes;
  };
  std::string huge_len = RawFile(good, body);
  const uint64_t big = 1ull << 40;
  std::memcpy(huge_len.data(), &big, 8);
  const std::vector<Case> cases = {
      {"short prefix", std::string("\x10\0\0", 3)},
      {"header longer than file", huge_len},
      {"truncated header", RawFile(good, body).substr(0, 8 + good.size() / 2)},
      {"truncated body", RawFile(good, body.substr(0, 20))},
      {"extra bytes", RawFile(good, body + "!!!!")},
      {"not json", RawFile("{nope", body)},
      {"json array", RawFile("[1,2]", body)},
      {"entry not object", RawFile(one("3"), body)},
      {"missing dtype", RawFile(one(R"({"shape":[6],"data_offsets":[0,24]})"), body)},
      {"missing offsets", RawFile(one(R"({"dtype":"F32","shape":[6]})"), body)},
      {"negative dim", RawFile(one(R"({"dtype":"F32","shape":[-6],"data_offsets":[0,24]})"), body)},
      {"reversed offsets",
       RawFile(one(R"({"dtype":"F32","shape":[6],"data_offsets":[24,0]})"), body)},
      {"offsets past end",
       RawFile(one(R"({"dtype":"F32","shape":[8],"data_offsets":[0,32]})"), body)},
      {"shape/size mismatch",
       RawFile(one(R"({"dtype":"F32","shape":[5],"data_offsets":[0,24]})"), body)},
      {"overlap", RawFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                          R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                          body)},
      {"gap", RawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})",
                      body)},
      {"metadata not strings", RawFile(R"({"__metadata__":{"k":1},)" + good.substr(1), body)},
  };
  for (const Case& c : cases) {
    const Status s = LoadRaw(c.bytes);
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << c.what << ": " << s.ToString();
  }
  const Status i64 =
      LoadRaw(RawFile(one(R"({"dtype":"I64","shape":[3],"data_offsets":[0,24]})"), body));
  EXPECT_EQ(i64.code(), StatusCode::kInvalidArgument) << i64.ToString();
  EXPECT_NE(i64.message().find("I64"), std::string::npos);
  EXPECT_EQ(LoadSafetensors(Path("none")).status().code(), StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, HfConfigRoundTrips) {
  ModelConfig c = Small();
  c.tied_embeddings = false;
  c.qkv_bias = true;
  c.rope_layout = RopeLayout::kRotateHalf;
  c.rope_theta = 1e6f;
  c.norm_eps = 1e-6f;
  c.bos_id = 3;
  c.eos_id = 4;
  for (bool adjacent : {false, true}) {
    c.rope_layout = adjacent ? RopeLayout::kAdjacentPairs : RopeLayout::kRotateHalf;
    c.qkv_bias = !adjacent;
    c.tied_embeddings = adjacent;
    ASSERT_TRUE(SaveHfConfig(c, Path("config.json")).ok());
    auto back = LoadHfConfig(Path("config.json"));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->ToString(), c.ToString());
    EXPECT_EQ(back->rope_theta, c.rope_theta);
    EXPECT_EQ(back->norm_eps, c.norm_eps);
    EXPECT_EQ(back->bos_id, 3);
    EXPECT_EQ(back->eos_id, 4);
  }
}

TEST_F(SafetensorsTest, ReadsHfStyleConfigs) {
  // A Qwen2-like config: no attention_bias key, no treepo key, eos as a list.
  WriteFileBytes(Path("config.json"), R"({"model_type":"qwen2","hidden_size":16,
      "intermediate_size":40,"num_hidden_layers":2,"num_attention_heads":4,
      "num_key_value_heads":2,"vocab_size":32,"max_position_embeddings":128,
      "rope_theta":1000000.0,"rms_norm_eps":1e-06,"tie_word_embeddings":true,
      "bos_token_id":null,"eos_token_id":[5,6]})");
  auto c = LoadHfConfig(Path("config.json"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_TRUE(c->tied_embeddings);
  EXPECT_EQ(c->rope_layout, RopeLayout::kRotateHalf);
  EXPECT_EQ(c->eos_id, 5);
  EXPECT_EQ(c->max_seq_len, 128);

  WriteFileBytes(Path("config.json"), R"({"hidden_size":16})");
  const Status missing = LoadHfConfig(Path("config.json")).status();
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find("intermediate_size"), std::string::npos);
  WriteFileBytes(Path("config.json"), R"({"hidden_size":"16"})");
  EXPECT_EQ(LoadHfConfig(Path("config.json")).status().code(), StatusCode::kInvalidArgument);
  WriteFileBytes(Path("config.json"), "{not json");
  EXPECT_EQ(LoadHfConfig(Path("config.json")).status().code(), StatusCode::kDataLoss);
}

TEST_F(SafetensorsTest, HfModelRoundTrips) {
  for (bool tied : {true, false}) {
    ModelConfig c = Small();
    c.tied_embeddings = tied;
    c.qkv_bias = !tied;
    auto w = ModelWeights::Random(c, 11);
    ASSERT_TRUE(w.ok());
    const std::string dir = Path(tied ? "tied" : "untied");
    ASSERT_TRUE(SaveHfModel(*w, dir).ok());
    auto tensors = LoadSafetensors(dir + "/model.safetensors");
    ASSERT_TRUE(tensors.ok());
    EXPECT_EQ(tensors->count("lm_head.weight"), tied ? 0u : 1u);
    EXPECT_EQ(tensors->count("model.layers.1.self_attn.v_proj.bias"), tied ? 0u : 1u);
    auto back = LoadModel(dir);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->config.ToString(), c.ToString());
    EXPECT_EQ(back->data, w->data);
  }
}

TEST_F(SafetensorsTest, HfModelRefusesMissingMisshapedAndNonFinite) {
  auto w = ModelWeights::Random(Small(), 5);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(SaveHfModel(*w, Path("m")).ok());
  auto tensors = *LoadSafetensors(Path("m/model.safetensors"));
  const std::string name = "model.layers.1.mlp.up_proj.weight";

  auto edited = tensors;
  edited.erase(name);
  ASSERT_TRUE(SaveSafetensors(Path("m/model.safetensors"), edited).ok());
  Status s = LoadHfModel(Path("m")).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("missing tensor " + name), std::string::npos) << s.message();

  edited = tensors;
  edited[name].shape = {16, 40};  // transposed
  ASSERT_TRUE(SaveSafetensors(Path("m/model.safetensors"), edited).ok());
  s = LoadHfModel(Path("m")).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("[16,40]"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[40,16]"), std::string::npos) << s.message();

  edited = tensors;
  edited[name].data[3] = NAN;
  ASSERT_TRUE(SaveSafetensors(Path("m/model.safetensors"), edited).ok());
  s = LoadHfModel(Path("m")).status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find(name), std::string::npos) << s.message();
}

TEST_F(SafetensorsTest, LoadModelDispatchesOnPath) {
  auto w = ModelWeights::Random(Small(), 9);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(SaveLlama2cCheckpoint(*w, Path("m.bin")).ok());
  auto bin = LoadModel(Path("m.bin"));
  ASSERT_TRUE(bin.ok()) << bin.status().ToString();
  EXPECT_EQ(bin->data, w->data);
  EXPECT_EQ(LoadModel(Path("nothing")).status().code(), StatusCode::kNotFound);
  WriteFileBytes(Path("m.txt"), "hello");
  EXPECT_EQ(LoadModel(Path("m.txt")).status().code(), StatusCode::kInvalidArgument);
  std::filesystem::create_directories(Path("emptydir"));
  EXPECT_FALSE(LoadModel(Path("emptydir")).ok());
}

TEST_F(SafetensorsTest, LoadsShardedDirectories) {
  auto w = ModelWeights::Random(Small(), 13);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(SaveHfModel(*w, Path("s")).ok());
  auto tensors = *LoadSafetensors(Path("s/model.safetensors"));
  std::filesystem::remove(Path("s/model.safetensors"));
  std::map<std::string, NamedTensor> shard[2];
  nlohmann::json index;
  int i = 0;
  for (auto& [name, t] : tensors) {
    const int k = i++ % 2;
    shard[k][name] = t;
    index["weight_map"][name] = "part" + std::to_string(k) + ".safetensors";
  }
  ASSERT_TRUE(SaveSafetensors(Path("s/part0.safetensors"), shard[0]).ok());
  ASSERT_TRUE(SaveSafetensors(Path("s/part1.safetensors"), shard[1]).ok());
  WriteFileBytes(Path("s/model.safetensors.index.json"), index.dump());
  auto back = LoadModel(Path("s"));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->data, w->data);
}

TEST_F(SafetensorsTest, Stories260KConvertsToHfAndBack) {
  const std::string path = SharedDir() + "/models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent (set TREEPO_SHARED_DIR)";
  auto w = LoadModel(path);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE(SaveHfModel(*w, Path("stories")).ok());
  auto back = LoadModel(Path("stories"));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->config.ToString(), w->config.ToString());
  EXPECT_EQ(back->config.rope_layout, RopeLayout::kAdjacentPairs);
  EXPECT_EQ(back->data, w->data);
}

}  // namespace
}  // namespace treepo::model

namespace treepo::model {
namespace {

class ModelLoadGuardTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = FreshTempDir("model_load_guard_test"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

// config.json that names fewer layers than the weights hold describes another model: loading
// it would drop layers and generate garbage.
TEST_F(ModelLoadGuardTest, RefusesConfigWithFewerLayersThanTheWeights) {
  ModelConfig c = Small();
  c.n_layers = 3;
  auto w = ModelWeights::Random(c, 5);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(SaveHfModel(*w, Path("m")).ok());
  auto j = nlohmann::json::parse(ReadFileBytes(Path("m/config.json")));
  j["num_hidden_layers"] = 2;
  WriteFileBytes(Path("m/config.json"), j.dump());
  const Status s = LoadHfModel(Path("m")).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("num_hidden_layers = 2 but the weights hold 3 layers"),
            std::string::npos)
      << s.message();
}

TEST_F(ModelLoadGuardTest, DirectoriesInPlaceOfFilesAreClearErrors) {
  auto w = ModelWeights::Random(Small(), 5);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(SaveHfModel(*w, Path("m")).ok());
  std::filesystem::remove(Path("m/model.safetensors"));
  std::filesystem::create_directories(Path("m/model.safetensors"));
  Status s = LoadHfModel(Path("m")).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is a directory"), std::string::npos) << s.message();

  std::filesystem::remove(Path("m/config.json"));
  std::filesystem::create_directories(Path("m/config.json"));
  s = LoadHfModel(Path("m")).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is a directory"), std::string::npos) << s.message();
}

// Sizes that each pass the plausibility bounds but together need terabytes are refused
// before anything is allocated, naming the limit.
TEST_F(ModelLoadGuardTest, RefusesModelsThatCannotFitInMemory) {
  std::filesystem::create_directories(Path("huge"));
  WriteFileBytes(Path("huge/config.json"),
                 R"({"hidden_size": 65536, "intermediate_size": 262144,
                     "num_hidden_layers": 1024, "num_attention_heads": 64,
                     "vocab_size": 4194304})");
  const Status s = LoadHfModel(Path("huge")).status();
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("memory"), std::string::npos) << s.message();

  ModelConfig c = Small();
  EXPECT_TRUE(CheckKvPoolFitsMemory(c, 1024, 16).ok());
  c.dim = 4096;
  c.n_heads = c.n_kv_heads = 32;
  c.n_layers = 32;
  const Status kv = CheckKvPoolFitsMemory(c, int64_t{1} << 24, 16);
  EXPECT_EQ(kv.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(kv.message().find("KV pool of 16777216 pages"), std::string::npos) << kv.message();
}

}  // namespace
}  // namespace treepo::model

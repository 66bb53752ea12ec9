#include "common/model/llama2c.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/model/model_test_util.h"

namespace treepo::model {
namespace {

using testing::FreshTempDir;
using testing::ReadFileBytes;
using testing::SharedDir;
using testing::WriteFileBytes;

ModelConfig Small(bool tied) {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 40;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 32;
  c.max_seq_len = 24;
  c.tied_embeddings = tied;
  return c;
}

class Llama2cTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = FreshTempDir("llama2c_test"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Saves random weights for Small(tied) and returns the file's bytes.
  std::string SavedBytes(bool tied) {
    auto w = ModelWeights::Random(Small(tied), 7);
    EXPECT_TRUE(w.ok());
    EXPECT_TRUE(SaveLlama2cCheckpoint(*w, Path("m.bin")).ok());
    return ReadFileBytes(Path("m.bin"));
  }

  Status LoadBytes(const std::string& bytes) {
    WriteFileBytes(Path("bad.bin"), bytes);
    return LoadLlama2cCheckpoint(Path("bad.bin")).status();
  }

  std::string dir_;
};

TEST_F(Llama2cTest, RoundTripsTiedAndUntied) {
  for (bool tied : {true, false}) {
    auto w = ModelWeights::Random(Small(tied), 3);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(SaveLlama2cCheckpoint(*w, Path("m.bin")).ok());
    const size_t floats = w->num_params() + 24 * 4;  // + freq_cis [seq, head/2] x 2
    EXPECT_EQ(std::filesystem::file_size(Path("m.bin")), 28 + 4 * floats);
    auto back = LoadLlama2cCheckpoint(Path("m.bin"));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->config.ToString(), w->config.ToString());
    EXPECT_EQ(back->config.tied_embeddings, tied);
    EXPECT_EQ(back->config.max_seq_len, 24);
    EXPECT_EQ(back->data, w->data);
  }
}

TEST_F(Llama2cTest, HeaderSignMarksUntiedClassifier) {
  const std::string tied = SavedBytes(true), untied = SavedBytes(false);
  int32_t v_tied, v_untied;
  std::memcpy(&v_tied, tied.data() + 20, 4);
  std::memcpy(&v_untied, untied.data() + 20, 4);
  EXPECT_EQ(v_tied, 32);
  EXPECT_EQ(v_untied, -32);
  EXPECT_EQ(untied.size() - tied.size(), 32u * 16 * 4);
}

TEST_F(Llama2cTest, SaveRefusesWhatTheFormatCannotHold) {
  ModelConfig c = Small(true);
  c.qkv_bias = true;
  auto w = ModelWeights::Zeros(c);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(SaveLlama2cCheckpoint(*w, Path("m.bin")).code(), StatusCode::kInvalidArgument);
  c.qkv_bias = false;
  c.rope_layout = RopeLayout::kRotateHalf;
  w = ModelWeights::Zeros(c);
  EXPECT_EQ(SaveLlama2cCheckpoint(*w, Path("m.bin")).code(), StatusCode::kInvalidArgument);
}

TEST_F(Llama2cTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadLlama2cCheckpoint(Path("none.bin")).status().code(), StatusCode::kNotFound);
}

TEST_F(Llama2cTest, RefusesTruncatedHeader) {
  const Status s = LoadBytes(SavedBytes(true).substr(0, 10));
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("header"), std::string::npos) << s.message();
}

TEST_F(Llama2cTest, RefusesTruncatedBodyNamingBothSizes) {
  const std::string bytes = SavedBytes(true);
  const Status s = LoadBytes(bytes.substr(0, bytes.size() - 4));
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find(std::to_string(bytes.size())), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(std::to_string(bytes.size() - 4)), std::string::npos);
  EXPECT_NE(s.message().find("truncated"), std::string::npos);
}

TEST_F(Llama2cTest, RefusesTrailingBytes) {
  const Status s = LoadBytes(SavedBytes(false) + "xyz!");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("trailing"), std::string::npos) << s.message();
}

TEST_F(Llama2cTest, RefusesInsaneHeaders) {
  const std::string good = SavedBytes(true);
  struct Case {
    int field;
    int32_t value;
  };
  // dim not a multiple of heads, zero heads, heads not a multiple of kv heads, negative
  // layers, INT32_MIN vocab, zero seq_len, an absurd dim.
  for (Case c : {Case{0, 17}, Case{3, 0}, Case{4, 3}, Case{2, -1}, Case{5, INT32_MIN}, Case{6, 0},
                 Case{0, 1 << 30}}) {
    std::string bytes = good;
    std::memcpy(bytes.data() + 4 * c.field, &c.value, 4);
    const Status s = LoadBytes(bytes);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.field << "=" << c.value;
    EXPECT_NE(s.message().find("bad header"), std::string::npos) << s.message();
  }
}

TEST_F(Llama2cTest, RefusesVersionedExports) {
  std::string bytes = SavedBytes(true);
  const int32_t magic_version[2] = {0x616b3432, 1};
  std::memcpy(bytes.data(), magic_version, sizeof(magic_version));
  const Status s = LoadBytes(bytes);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("ak42"), std::string::npos) << s.message();
}

TEST_F(Llama2cTest, RefusesHugeClaimWithoutAllocating) {
  std::string bytes = SavedBytes(true);
  const int32_t big[7] = {4096, 11008, 64, 32, 32, 32000, 4096};  // a 7B model's header
  std::memcpy(bytes.data(), big, sizeof(big));
  const Status s = LoadBytes(bytes);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("implies"), std::string::npos) << s.message();
}

TEST_F(Llama2cTest, RefusesNonFiniteWeights) {
  for (float bad : {NAN, INFINITY}) {
    std::string bytes = SavedBytes(true);
    // Element 5 of layer 0's wq: after the header, embeddings [32,16] and rms_att [2,16].
    std::memcpy(bytes.data() + 28 + 4 * (32 * 16 + 2 * 16 + 5), &bad, 4);
    const Status s = LoadBytes(bytes);
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_NE(s.message().find("model.layers.0.self_attn.q_proj.weight"), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("non-finite"), std::string::npos);
  }
}

TEST_F(Llama2cTest, LegacyFreqCisIsSkipped) {
  std::string bytes = SavedBytes(true);
  auto before = LoadLlama2cCheckpoint(Path("m.bin"));
  ASSERT_TRUE(before.ok());
  // freq_cis sits between rms_final and the end of a tied file: garbage there is ignored.
  const float nan = NAN;
  std::memcpy(bytes.data() + bytes.size() - 4, &nan, 4);
  WriteFileBytes(Path("m2.bin"), bytes);
  auto after = LoadLlama2cCheckpoint(Path("m2.bin"));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->data, before->data);
}

TEST_F(Llama2cTest, LoadsStories260K) {
  const std::string path = SharedDir() + "/models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " absent (set TREEPO_SHARED_DIR)";
  auto w = LoadLlama2cCheckpoint(path);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  const ModelConfig& c = w->config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.rope_layout, RopeLayout::kAdjacentPairs);
  // First embedding value and rms_final come straight from the file.
  const std::string bytes = ReadFileBytes(path);
  float first, final_norm_last;
  std::memcpy(&first, bytes.data() + 28, 4);
  const size_t final_norm_end = 28 + 4 * (w->layout.final_norm() + 64);
  std::memcpy(&final_norm_last, bytes.data() + final_norm_end - 4, 4);
  EXPECT_EQ(w->data[0], first);
  EXPECT_EQ(w->data[w->layout.final_norm() + 63], final_norm_last);

  // Saving reproduces every weight byte (freq_cis is recomputed, so compare around it).
  ASSERT_TRUE(SaveLlama2cCheckpoint(*w, Path("s.bin")).ok());
  const std::string again = ReadFileBytes(Path("s.bin"));
  ASSERT_EQ(again.size(), bytes.size());
  EXPECT_EQ(again.substr(0, final_norm_end), bytes.substr(0, final_norm_end));
  const float* a = reinterpret_cast<const float*>(again.data() + final_norm_end);
  const float* b = reinterpret_cast<const float*>(bytes.data() + final_norm_end);
  for (size_t i = 0; i < (bytes.size() - final_norm_end) / 4; ++i) {
    ASSERT_NEAR(a[i], b[i], 1e-4) << "freq_cis element " << i;
  }
}

}  // namespace
}  // namespace treepo::model

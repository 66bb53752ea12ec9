// `treepo generate` end to end: runs the binary ($TREEPO_BINARY_DIR/cluster/treepo) on
// stories260K and checks stdout and --logits-out against the PyTorch reference.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/testing/paths.h"

namespace {

namespace fs = std::filesystem;

struct ShellRun {
  int exit_code = -1;
  std::string out;
};

// Runs `cmd` through the shell; stdout captured, stderr discarded.
ShellRun Shell(const std::string& cmd) {
  ShellRun r;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class GenerateE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path shared = treepo::testing::SharedDir();
    binary_ = treepo::testing::TreepoBinary();
    model_ = (shared / "models/stories260K/stories260K.bin").string();
    tokenizer_ = (shared / "models/stories260K/tok512.bin").string();
    ref_path_ = treepo::testing::TestDataPath("stories260k_reference.json");
    if (!fs::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    if (!fs::exists(model_) || !fs::exists(ref_path_)) {
      GTEST_SKIP() << "needs " << model_ << " and " << ref_path_;
    }
    std::ifstream in(ref_path_);
    ref_ = nlohmann::json::parse(in);
  }

  std::string Base() const {
    return binary_ + " generate --model '" + model_ + "' --tokenizer '" + tokenizer_ + "'";
  }

  std::string binary_, model_, tokenizer_, ref_path_;
  nlohmann::json ref_;
};

TEST_F(GenerateE2eTest, GreedyFromBosPrintsReferenceStory) {
  const int n = static_cast<int>(ref_["greedy"]["tokens"].size());
  ShellRun r = Shell(Base() + " --prompt '' --temperature 0 --max-tokens " + std::to_string(n));
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, ref_["greedy"]["text"].get<std::string>() + "\n");
}

TEST_F(GenerateE2eTest, LogitsOutMatchesReference) {
  const auto& p = ref_["prompts"][1];  // "Once upon a time"
  const std::string text = p["text"].get<std::string>();
  const fs::path out =
      fs::temp_directory_path() / ("treepo_e2e_logits_" + std::to_string(::getpid()) + ".bin");
  const int new_tokens = 6;
  ShellRun r =
      Shell(Base() + " --prompt '" + text + "' --temperature 0.7 --top-k 20 --seed 5" +
            " --max-tokens " + std::to_string(new_tokens) + " --logits-out " + out.string());
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind(text, 0), 0u) << r.out;  // stdout starts with the prompt
  EXPECT_GT(r.out.size(), text.size() + 1);
  const size_t rows = p["tokens"].size() + new_tokens - 1, vocab = 512;
  ASSERT_EQ(fs::file_size(out), rows * vocab * sizeof(float));
  std::vector<float> logits(rows * vocab);
  std::ifstream(out, std::ios::binary)
      .read(reinterpret_cast<char*>(logits.data()), logits.size() * sizeof(float));
  fs::remove(out);
  for (size_t row = 0; row < p["tokens"].size(); ++row) {
    float diff = 0.0f, scale = 0.0f;
    for (size_t v = 0; v < vocab; ++v) {
      const float want = p["logits"][row][v].get<float>();
      diff = std::max(diff, std::abs(logits[row * vocab + v] - want));
      scale = std::max(scale, std::abs(want));
    }
    EXPECT_LT(diff / scale, 1e-4f) << "row " << row;
  }
}

TEST_F(GenerateE2eTest, SameSeedSameText) {
  const std::string cmd = Base() +
                          " --prompt 'Tom had' --temperature 1 --top-p 0.9 --seed 11 "
                          "--max-tokens 30";
  ShellRun a = Shell(cmd), b = Shell(cmd);
  ASSERT_EQ(a.exit_code, 0);
  EXPECT_EQ(a.out, b.out);
}

TEST_F(GenerateE2eTest, BadInputFailsCleanly) {
  EXPECT_EQ(
      Shell(binary_ + " generate --model /nonexistent --tokenizer '" + tokenizer_ + "' --prompt hi")
          .exit_code,
      1);
  EXPECT_EQ(Shell(Base() + " --prompt hi --max-tokens 100000").exit_code, 1);
  EXPECT_EQ(Shell(Base() + " --prompt hi --top-p 0").exit_code, 1);
  EXPECT_NE(Shell(Base() + " --max-tokens nope").exit_code, 0);
}

}  // namespace

// `treepo tokenize`, `treepo chat-template` and `treepo advantages` end to end: the binary run as a
// user would, stdout and stderr captured to files, compared with the libraries' results and the
// jinja2 reference renderings.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cluster/child_process.h"
#include "common/model/hf_chat_template.h"
#include "common/model/hf_tokenizer.h"
#include "common/model/hf_tokenizer_testing.h"
#include "common/testing/paths.h"
#include "common/tree/tree_record.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

class TextCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(testing::TreepoBinary())) {
      GTEST_SKIP() << "no treepo binary at " << testing::TreepoBinary();
    }
    dir_ = testing::FreshTempDir(std::string("text_commands_") +
                                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }

  struct Run {
    int exit_code = -1;
    std::string out, err;
  };
  // Runs `treepo <args>` (a shell-quoted argument string) with optional stdin text.
  Run Treepo(const std::string& args, const std::string& stdin_text = "") {
    std::ofstream(dir_ + "/stdin.txt", std::ios::binary) << stdin_text;
    const std::string cmd = Quote(testing::TreepoBinary()) + " " + args + " < " +
                            Quote(dir_ + "/stdin.txt") + " > " + Quote(dir_ + "/out.txt") + " 2> " +
                            Quote(dir_ + "/err.txt");
    auto child = ChildProcess::Spawn({"/bin/sh", "-c", cmd});
    Run r;
    if (!child.ok()) return r;
    if (!child->Wait(60000)) return r;
    r.exit_code = child->exit_code();
    r.out = ReadFile(dir_ + "/out.txt");
    r.err = ReadFile(dir_ + "/err.txt");
    return r;
  }

  std::string dir_;
};

TEST_F(TextCommandsTest, TokenizeEncodesLinesAndDecodesThem) {
  std::ofstream(dir_ + "/tokenizer.json") << testing::SentencePieceStyleTokenizerJson().dump();
  Run r = Treepo("tokenize --tokenizer " + Quote(dir_) + " --text " + Quote("ab ab\nba"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[264,264]\n[259,261,260]\n");
  r = Treepo("tokenize --tokenizer " + Quote(dir_ + "/tokenizer.json") + " --add-special-tokens",
             "ab ab\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[1,264,264]\n");
  std::ofstream(dir_ + "/ids.txt") << "[1,264,264]\nnot json\n[259,261,260]\n[99999]\n";
  r = Treepo("tokenize --decode --tokenizer " + Quote(dir_) + " --text-file " +
             Quote(dir_ + "/ids.txt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "<s> ab ab\nba\n");
  EXPECT_NE(r.err.find("line 2: not a JSON array"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 4: id 99999 outside the vocabulary"), std::string::npos) << r.err;
  r = Treepo("tokenize --decode --skip-special-tokens --tokenizer " + Quote(dir_), "[1,264]\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ab\n");
}

TEST_F(TextCommandsTest, TokenizeRefusesBadTokenizers) {
  Run r = Treepo("tokenize --tokenizer " + Quote(dir_ + "/missing") + " --text x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing does not exist"), std::string::npos) << r.err;
  fs::create_directories(dir_ + "/empty");
  r = Treepo("tokenize --tokenizer " + Quote(dir_ + "/empty") + " --text x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no tokenizer.json or tokenizer.bin"), std::string::npos) << r.err;
  std::ofstream(dir_ + "/tokenizer.json") << "{\"model\": {\"type\": \"WordPiece\"}}";
  r = Treepo("tokenize --tokenizer " + Quote(dir_) + " --text x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("model type 'WordPiece' is not supported"), std::string::npos) << r.err;
}

TEST_F(TextCommandsTest, TokenizeWithTheRealQwen3Tokenizer) {
  if (!testing::HfTokenizerPresent("qwen3")) GTEST_SKIP() << testing::kHfTokenizerSkip;
  const std::string model = testing::HfTokenizerModelDir("qwen3");
  const std::string text = "<|im_start|>user\nWhat is 12*7? 中文 😀<|im_end|>";
  Run r = Treepo("tokenize --whole --tokenizer " + Quote(model) + " --text " + Quote(text));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tok = model::HfTokenizer::Load(model);
  ASSERT_TRUE(tok.ok());
  const std::vector<int32_t> ids = tok->Encode(text, false);
  EXPECT_EQ(r.out, json(ids).dump() + "\n");
  r = Treepo("tokenize --decode --tokenizer " + Quote(model), r.out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, text + "\n");
}

TEST_F(TextCommandsTest, ChatTemplateRendersLikeJinja2) {
  // The Qwen3 template in a model directory's tokenizer_config.json.
  json config = {{"chat_template", ReadFile(testing::TestDataPath("chat_templates/qwen3.jinja"))},
                 {"eos_token", "<|im_end|>"},
                 {"bos_token", nullptr}};
  std::ofstream(dir_ + "/tokenizer_config.json") << config.dump();
  const json ref = json::parse(ReadFile(testing::TestDataPath("chat_template_reference.json")));
  int checked = 0;
  for (const json& c : ref["cases"]) {
    if (c["template"] != "qwen3.jinja" || c["error"].is_string()) continue;
    if (c["title"] != "multi-turn" && c["title"] != "thinking off") continue;
    json doc = {{"messages", c["messages"]}};
    for (const auto& [k, v] : c["extra"].items()) doc[k] = v;
    std::ofstream(dir_ + "/m.json") << doc.dump();
    const Run r = Treepo(
        "chat-template --tokenizer " + Quote(dir_) + " --messages " + Quote(dir_ + "/m.json") +
        (c["add_generation_prompt"].get<bool>() ? " --add-generation-prompt" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, c["rendered"].get<std::string>()) << c["title"];
    ++checked;
  }
  EXPECT_EQ(checked, 4);
  std::ofstream(dir_ + "/m.json") << R"([{"role": "user", "content": "Hi"}])";
  Run r = Treepo("chat-template --tokenizer " + Quote(dir_) + " --messages " +
                 Quote(dir_ + "/m.json") + " --add-generation-prompt --var enable_thinking=false");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  std::ofstream(dir_ + "/m.json") << R"({"no": "messages"})";
  r = Treepo("chat-template --tokenizer " + Quote(dir_) + " --messages " + Quote(dir_ + "/m.json"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("expected an array of messages"), std::string::npos) << r.err;
}

// Node 1 [7 8] holds leaves 2 (+1) and 3 (-1): per segment, node 1 changes nothing and the two
// leaf nodes carry +-1 / (std sqrt(2)); grpo's one value per leaf is their sum.
TEST_F(TextCommandsTest, AdvantagesPrintsPerSegmentValuesOfATreeFile) {
  TreeRecord t;
  t.query_id = "q1";
  t.prompt_tokens = {1, 5, 6};
  t.nodes = {{1, std::nullopt, 1, {7, 8}, {-1.0f, -2.0f}, "", FinishReason::kNone, 1, 0},
             {2, 1, 2, {9}, {-0.5f}, "", FinishReason::kEos, 1, 0},
             {3, 1, 2, {10, 2}, {-0.25f, -0.75f}, "", FinishReason::kEos, 2, 0}};
  t.leaves = {{2, 1.0f, FinishReason::kEos, 3}, {3, -1.0f, FinishReason::kEos, 4}};
  ASSERT_TRUE(WriteTreeFile(dir_ + "/trees.jsonl", {t}).ok());
  Run r =
      Treepo("advantages --trees " + Quote(dir_ + "/trees.jsonl") + " --estimator tree_segment");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<json> rows;
  while (std::getline(lines, line)) rows.push_back(json::parse(line));
  ASSERT_EQ(rows.size(), 2u);
  const double h = 1.0 / (std::sqrt(2.0) + 1e-6);
  EXPECT_EQ(rows[1]["node"], 3);
  EXPECT_NEAR(rows[1]["advantage"].get<double>(), -h, 1e-9);
  ASSERT_EQ(rows[1]["segments"].size(), 2u);
  EXPECT_NEAR(rows[1]["segments"][0].get<double>(), 0.0, 1e-9);
  EXPECT_NEAR(rows[1]["segments"][1].get<double>(), -h, 1e-9);
  // A per-leaf estimator prints no segments.
  r = Treepo("advantages --trees " + Quote(dir_ + "/trees.jsonl") + " --estimator grpo");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("segments"), std::string::npos);
}

}  // namespace
}  // namespace treepo::cluster

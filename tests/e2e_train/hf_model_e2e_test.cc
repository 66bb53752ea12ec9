// A Hugging Face model directory end to end: a random tiny Qwen3-shaped model (q/k norms,
// head_dim 16 with hidden 32 and 4 heads, tied embeddings, the real 151,936-row vocabulary,
// BF16 weights)
// beside the real Qwen3 tokenizer.json and tokenizer_config.json (chat template), run through
// `treepo rollout`, `treepo eval` and `treepo train` with math-eval prompts in chat form.
// The weights are random, so only the plumbing is checked: prompts rendered with the template
// (<|im_start|>user ... <|im_start|>assistant), generation stopping on <|im_end|>, trees and
// RL steps written, checkpoints that carry the tokenizer and template.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/model/hf_tokenizer_testing.h"
#include "common/model/safetensors.h"
#include "common/model/text_tokenizer.h"
#include "common/testing/paths.h"
#include "common/tree/tree_record.h"
#include "tests/e2e_chaos/e2e_util.h"
#include "tests/e2e_train/tiny_train.h"

namespace {

namespace fs = std::filesystem;

using treepo::testing::Shell;
using treepo::testing::StepLines;

std::string ReadAll(const fs::path& p) { return treepo::testing::ReadAll(p.string()); }

constexpr int kImStart = 151644, kImEnd = 151645;

class HfModelE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("treepo_hf_model_e2e_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    if (!treepo::testing::HfTokenizerPresent("qwen3")) return;
    treepo::model::ModelConfig c;
    c.dim = 32;
    c.hidden_dim = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_size = 16;
    c.qk_norm = true;
    c.vocab_size = 151936;
    c.max_seq_len = 1024;
    c.rope_theta = 1000000.0f;
    c.norm_eps = 1e-6f;
    c.rope_layout = treepo::model::RopeLayout::kRotateHalf;
    c.tied_embeddings = true;
    c.bos_id = 151643;
    c.eos_id = kImEnd;
    auto w = treepo::model::ModelWeights::Random(c, 7);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    const fs::path model = root_ / "qwen3_tiny";
    // BF16 on disk, as real checkpoints: workers keep it BF16, the learner trains fp32.
    ASSERT_TRUE(treepo::model::SaveHfModel(
                    treepo::model::ModelWeights::ToHalf(*w, treepo::model::WeightDtype::kBF16),
                    model.string())
                    .ok());
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
      fs::copy_file(fs::path(treepo::testing::HfTokenizerModelDir("qwen3")) / f, model / f);
    }
    ready_ = true;
  }
  static void TearDownTestSuite() {
    if (!::testing::Test::HasFailure()) fs::remove_all(root_);
  }
  void SetUp() override {
    binary_ = treepo::testing::TreepoBinary();
    if (!fs::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    if (!treepo::testing::HfTokenizerPresent("qwen3")) {
      GTEST_SKIP() << "Qwen3 tokenizer " << treepo::testing::kHfTokenizerSkip;
    }
    ASSERT_TRUE(ready_);
  }

  static std::string MathEval(const std::string& set) {
    return treepo::testing::SharedDir() + "/data/math-eval/" + set + ".jsonl";
  }
  // Why a test that reads `set` cannot run here; empty when it can.
  static std::string MissingMathEval(const std::string& set) {
    if (fs::exists(MathEval(set))) return "";
    return "needs the math-eval set " + MathEval(set) +
           " (the shared data folder; TREEPO_SHARED_DIR names another)";
  }
  std::string Model() const { return (root_ / "qwen3_tiny").string(); }

  static inline fs::path root_;
  static inline bool ready_ = false;
  std::string binary_;
};

TEST_F(HfModelE2eTest, RolloutRendersChatPromptsAndStopsOnImEnd) {
  if (const std::string why = MissingMathEval("gsm8k"); !why.empty()) GTEST_SKIP() << why;
  const fs::path out = root_ / "rollout";
  fs::create_directories(out);
  const std::string cmd =
      binary_ + " rollout --model " + Model() + " --prompts " + MathEval("gsm8k") +
      " --prompt-field question --chat true" +
      " --instruction-suffix '\nPut the final answer in \\boxed{}.' --max-queries 3" +
      " --workers 2 --worker-pages 256 --width 4 --segment-tokens 8 --max-depth 2 --branch 2" +
      " --out " + (out / "trees.jsonl").string() + " --summary-out " +
      (out / "summary.json").string() + " --set progress=false";
  ASSERT_EQ(Shell(cmd, out / "rollout.log"), 0) << ReadAll(out / "rollout.log");
  const nlohmann::json summary = nlohmann::json::parse(ReadAll(out / "summary.json"));
  EXPECT_EQ(summary["queries"].get<int>(), 3);
  auto trees = treepo::ReadTreeFile((out / "trees.jsonl").string());
  ASSERT_TRUE(trees.ok()) << trees.status().ToString();
  ASSERT_EQ(trees->size(), 3u);
  auto tok = treepo::model::LoadTextTokenizer(Model());
  ASSERT_TRUE(tok.ok());
  for (const treepo::TreeRecord& t : *trees) {
    // <|im_start|>user\n{question}\nPut the final answer in \boxed{}.<|im_end|>\n
    // <|im_start|>assistant\n
    ASSERT_FALSE(t.prompt_tokens.empty());
    EXPECT_EQ(t.prompt_tokens.front(), kImStart);
    const std::string text = (*tok)->Decode(t.prompt_tokens, false);
    EXPECT_EQ(text, "<|im_start|>user\n" + t.prompt +
                        "\nPut the final answer in \\boxed{}.<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(t.leaves.size(), 4u);
    // A segment that samples <|im_end|> ends its path there (the model's EOS).
    for (const treepo::TreeNodeRecord& n : t.nodes) {
      for (size_t i = 0; i + 1 < n.tokens.size(); ++i) EXPECT_NE(n.tokens[i], kImEnd);
    }
  }
}

TEST_F(HfModelE2eTest, EvalOnAMathEvalSetInChatForm) {
  if (const std::string why = MissingMathEval("math500"); !why.empty()) GTEST_SKIP() << why;
  const fs::path out = root_ / "eval.json";
  const std::string cmd = binary_ + " eval --model " + Model() + " --prompts " +
                          MathEval("math500") +
                          " --chat --system-prompt 'Reason step by step.' --problems 3" +
                          " --samples 2 --max-new-tokens 8 --out " + out.string();
  ASSERT_EQ(Shell(cmd, root_ / "eval.log"), 0) << ReadAll(root_ / "eval.log");
  const nlohmann::json r = nlohmann::json::parse(ReadAll(out));
  EXPECT_EQ(r["problems"].get<int>(), 3);
  EXPECT_GT(r["tokens_generated"].get<int64_t>(), 0);
  // Without chat mode the same run reads raw prompts; a bad chat key is refused by name.
  EXPECT_NE(Shell(binary_ + " eval --model " + Model() + " --prompts " + MathEval("math500") +
                      " --enable-thinking maybe --chat --problems 1",
                  root_ / "eval_bad.log"),
            0);
  EXPECT_NE(ReadAll(root_ / "eval_bad.log").find("enable_thinking"), std::string::npos);
}

TEST_F(HfModelE2eTest, GenerateReadsTheDirectorysTokenizer) {
  const fs::path log = root_ / "generate.log";
  ASSERT_EQ(Shell(binary_ + " generate --model " + Model() +
                      " --prompt 'What is 2+3?' --max-tokens 4 --temperature 0",
                  log),
            0)
      << ReadAll(log);
  EXPECT_NE(ReadAll(log).find("What is 2+3?"), std::string::npos);
}

TEST_F(HfModelE2eTest, TwoRlStepsThroughTheModel) {
  if (const std::string why = MissingMathEval("gsm8k"); !why.empty()) GTEST_SKIP() << why;
  const fs::path out = root_ / "train";
  const std::string cmd =
      binary_ + " train --set model.base=" + Model() + " --set out_dir=" + out.string() +
      " --set task.prompts=" + MathEval("gsm8k") + " --set task.prompt_field=question" +
      " --set task.chat=true --set 'task.instruction_suffix=\nPut the final answer in "
      "\\boxed{}.'" +
      " --set steps=2 --set rollout.queries_per_step=2 --set rollout.width=2" +
      " --set rollout.segment_tokens=8 --set rollout.max_depth=2 --set rollout.branch=2" +
      " --set learner.lr=1e-3 --set output.checkpoint_every=1 --set output.progress=false" +
      " --set cluster.worker_pages=256 --set eval.before=false --set eval.checkpoints=false" +
      " --set eval.problems=2 --set eval.samples=0 --set eval.max_new_tokens=8";
  ASSERT_EQ(Shell(cmd, out.string() + ".log"), 0) << ReadAll(out.string() + ".log");
  const std::vector<nlohmann::json> lines = StepLines(out / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["weight_version"].get<uint64_t>(), i + 1);
    EXPECT_TRUE(std::isfinite(lines[i]["loss"].get<double>()));
    EXPECT_TRUE(std::isfinite(lines[i]["grad_norm"].get<double>()));
  }
  // The checkpoint is a Qwen3 model directory with the base's tokenizer and template.
  const fs::path ckpt = out / "checkpoints/step_000002";
  for (const char* f :
       {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(ckpt / f)) << f;
  }
  auto c = treepo::model::LoadHfConfig((ckpt / "config.json").string());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->qk_norm);
  EXPECT_EQ(c->head_dim(), 16);
  EXPECT_TRUE(fs::exists(out / "eval_final.json"));
  // The trees' prompts are in chat form.
  auto trees = treepo::ReadTreeFile((out / "trees/step_000001.jsonl").string());
  ASSERT_TRUE(trees.ok()) << trees.status().ToString();
  ASSERT_FALSE(trees->empty());
  EXPECT_EQ(trees->front().prompt_tokens.front(), kImStart);
}

}  // namespace

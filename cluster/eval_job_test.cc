#include "cluster/eval_job.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cluster/pretrain_job.h"
#include "common/testing/paths.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

// A few pretraining steps of a tiny model: enough to exercise the whole pipeline.
PretrainOptions TinyPretrain(const fs::path& dir) {
  PretrainOptions o;
  o.out_dir = dir.string();
  o.dim = 32;
  o.hidden_dim = 64;
  o.n_layers = 1;
  o.n_heads = 2;
  o.n_kv_heads = 2;
  o.max_seq_len = 96;
  o.steps = 6;
  o.batch_size = 8;
  o.corpus_problems = 64;
  o.eval_problems = 4;
  o.log_every = 0;
  o.blas_threads = 1;
  return o;
}

class EvalJobTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = ::treepo::testing::FreshTempDir("eval_job_test");
    auto r = RunPretrain(TinyPretrain(dir_));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    output_ = *r;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static fs::path dir_;
  static PretrainOutput output_;
};
fs::path EvalJobTest::dir_;
PretrainOutput EvalJobTest::output_;

TEST_F(EvalJobTest, PretrainWritesTheModelDir) {
  EXPECT_TRUE(fs::exists(dir_ / "config.json"));
  EXPECT_TRUE(fs::exists(dir_ / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "tokenizer.bin"));
  EXPECT_TRUE(fs::exists(dir_ / "task.json"));
  EXPECT_GT(output_.num_params, 0);
  EXPECT_GE(output_.heldout_accuracy, 0.0);
  EXPECT_LE(output_.heldout_accuracy, 1.0);
  auto task = ReadTaskOptions((dir_ / "task.json").string());
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->max_digits, BuiltinTaskOptions().max_digits);
  EXPECT_EQ(task->max_terms, BuiltinTaskOptions().max_terms);
}

TEST_F(EvalJobTest, TaskJsonRecordsTheTaskAndRefusesAnUnknownOne) {
  auto task = ReadTaskOptions((dir_ / "task.json").string());
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->task, "arithmetic");
  scheduler::ArithmeticOptions r = scheduler::ReasoningTaskOptions();
  r.max_steps = 8;
  const fs::path path = dir_ / "task_reasoning.json";
  std::ofstream(path) << TaskOptionsJson(r);
  auto back = ReadTaskOptions(path.string());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->task, "reasoning");
  EXPECT_EQ(back->max_steps, 8);
  std::ofstream(path) << R"({"task": "nope"})";
  auto bad = ReadTaskOptions(path.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown task \"nope\""), std::string::npos);
  EXPECT_NE(bad.status().message().find(path.string()), std::string::npos);
  std::ofstream(path) << R"({"task": 3})";
  EXPECT_EQ(ReadTaskOptions(path.string()).status().code(), StatusCode::kDataLoss);
}

TEST_F(EvalJobTest, MetricsArePlumbedAndJsonRoundTrips) {
  EvalOptions o;
  o.model_path = dir_.string();
  o.samples = 4;
  o.problems = 6;
  o.max_new_tokens = 40;
  o.out_json = (dir_ / "eval.json").string();
  o.progress = false;
  o.blas_threads = 1;
  auto r = RunEval(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->problems, 6);
  EXPECT_EQ(r->samples, 4);
  EXPECT_EQ(r->source, "arithmetic:heldout");
  for (double v : {r->accuracy, r->maj_at_k, r->pass_at_k, r->pass_at_1, r->boxed_rate}) {
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  EXPECT_GE(r->pass_at_k, r->pass_at_1);
  // 6 problems x (1 greedy + 4 samples), each 1..40 tokens.
  EXPECT_GE(r->tokens_generated, 30);
  EXPECT_LE(r->tokens_generated, 30 * 40);
  auto back = ReadEvalReport(o.out_json);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->problems, 6);
  EXPECT_DOUBLE_EQ(back->pass_at_k, r->pass_at_k);
  EXPECT_EQ(back->tokens_generated, r->tokens_generated);

  // Same seed, same numbers.
  auto again = RunEval(o);
  ASSERT_TRUE(again.ok());
  EXPECT_DOUBLE_EQ(again->maj_at_k, r->maj_at_k);
  EXPECT_EQ(again->tokens_generated, r->tokens_generated);
}

TEST_F(EvalJobTest, PromptFileIsScored) {
  const fs::path prompts = dir_ / "p.jsonl";
  std::ofstream(prompts) << "{\"id\":1,\"prompt\":\"Q: 12+30=?\\nA:\",\"answer\":\"42\"}\n"
                         << "{\"id\":2,\"prompt\":\"Q: 20+5=?\\nA:\",\"answer\":\"25\"}\n";
  EvalOptions o;
  o.model_path = dir_.string();
  o.prompts_path = prompts.string();
  o.samples = 2;
  o.problems = 0;
  o.max_new_tokens = 16;
  o.progress = false;
  auto r = RunEval(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->problems, 2);
  EXPECT_EQ(r->source, prompts.string());
}

TEST_F(EvalJobTest, RefusesBadOptions) {
  EvalOptions o;
  o.model_path = dir_.string();
  o.split = "test";
  EXPECT_EQ(RunEval(o).status().code(), StatusCode::kInvalidArgument);
  o.split = "heldout";
  o.max_new_tokens = 0;
  EXPECT_EQ(RunEval(o).status().code(), StatusCode::kInvalidArgument);
  o.max_new_tokens = 8;
  o.model_path = (dir_ / "missing").string();
  EXPECT_FALSE(RunEval(o).ok());
}

}  // namespace
}  // namespace treepo::cluster

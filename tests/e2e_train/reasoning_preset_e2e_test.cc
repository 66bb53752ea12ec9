// The reasoning task's preset end to end, kept short: `treepo pretrain --task reasoning` with
// tiny settings records the task in task.json, and `treepo train --config
// configs/reasoning.toml` on that base runs a few RL steps on the task's long chains (its
// "until" prompts, segments longer than the default 16 tokens), with the preset's keys in force.
// Without a base, the preset pretrains the reasoning task's (model.task). Misuse is refused
// with the name of what is wrong: an unknown task, a missing base.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/testing/paths.h"
#include "common/tree/tree_record.h"
#include "scheduler/task/reasoning_task.h"
#include "tests/e2e_chaos/e2e_util.h"
#include "tests/e2e_train/tiny_train.h"

namespace {

namespace fs = std::filesystem;

using treepo::testing::Shell;
using treepo::testing::StepLines;

std::string ReadAll(const fs::path& p) { return treepo::testing::ReadAll(p.string()); }

class ReasoningPresetE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = treepo::testing::TreepoBinary();
    if (!fs::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    root_ = treepo::testing::FreshTempDir("reasoning_preset_e2e");
    config_ = treepo::testing::SourceDir() + "/configs/reasoning.toml";
    ASSERT_TRUE(fs::exists(config_)) << config_;
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
  }

  fs::path root_;
  std::string binary_, config_;
};

TEST_F(ReasoningPresetE2eTest, PretrainsTheReasoningBaseAndTrainsWithThePreset) {
  const fs::path base = root_ / "base";
  ASSERT_EQ(Shell(binary_ + " pretrain --task reasoning --out " + base.string() +
                      " --steps 20 --batch 8 --dim 32 --hidden 64 --layers 1 --heads 2"
                      " --kv-heads 2 --corpus 200 --eval-problems 0 --threads 1",
                  root_ / "pretrain.log"),
            0)
      << ReadAll(root_ / "pretrain.log");
  // The task, and the preset's knobs, are recorded for `train` and `eval`.
  std::ifstream tj(base / "task.json");
  const nlohmann::json task = nlohmann::json::parse(tj);
  EXPECT_EQ(task.value("task", ""), "reasoning");
  EXPECT_EQ(task.value("min_steps", 0), 6);
  EXPECT_EQ(task.value("max_steps", 0), 9);
  EXPECT_NE(ReadAll(root_ / "pretrain.log").find("with a slip"), std::string::npos);

  const fs::path out = root_ / "run";
  const std::string cmd = binary_ + " train --config " + config_ +
                          " --set model.base=" + base.string() + " --set out_dir=" + out.string() +
                          " --set steps=2 --set rollout.queries_per_step=2 --set rollout.width=4"
                          " --set task.train_problems=50 --set eval.problems=4 --set eval.samples=1"
                          " --set eval.checkpoints=false --set output.progress=false"
                          " --set dashboard.enabled=false --set cluster.worker_pages=512";
  ASSERT_EQ(Shell(cmd, root_ / "train.log"), 0) << ReadAll(root_ / "train.log");
  EXPECT_EQ(StepLines(out / "metrics.jsonl").size(), 2u);
  EXPECT_TRUE(fs::exists(out / "eval_final.json"));

  // The train prompts are the reasoning task's, and the preset's segments of 32 tokens (at
  // most 4 of them) are in force: some segment of the (barely trained) model runs past the
  // default's 16 tokens.
  size_t longest = 0;
  for (const char* name : {"step_000000.jsonl", "step_000001.jsonl"}) {
    auto trees = treepo::ReadTreeFile((out / "trees" / name).string());
    ASSERT_TRUE(trees.ok()) << trees.status().ToString();
    ASSERT_FALSE(trees->empty());
    for (const treepo::TreeRecord& t : *trees) {
      EXPECT_TRUE(treepo::scheduler::ParseRepeatPrompt(t.prompt).ok()) << t.prompt;
      for (const treepo::TreeNodeRecord& n : t.nodes) {
        longest = std::max(longest, n.tokens.size());
        EXPECT_LE(n.tokens.size(), 32u);
        EXPECT_LE(n.depth, 4);
      }
    }
  }
  EXPECT_GT(longest, 16u);
}

TEST_F(ReasoningPresetE2eTest, AnUnknownTaskAndAMissingBaseAreRefusedByName) {
  EXPECT_NE(Shell(binary_ + " pretrain --task reasonning --out " + (root_ / "b").string(),
                  root_ / "bad_task.log"),
            0);
  EXPECT_NE(ReadAll(root_ / "bad_task.log").find("unknown task \"reasonning\""), std::string::npos)
      << ReadAll(root_ / "bad_task.log");
  EXPECT_FALSE(fs::exists(root_ / "b" / "config.json"));

  // model.task names a task too.
  EXPECT_NE(Shell(binary_ + " train --config " + config_ + " --set model.task=reasonning" +
                      " --set out_dir=" + (root_ / "run").string(),
                  root_ / "bad_model_task.log"),
            0);
  EXPECT_NE(ReadAll(root_ / "bad_model_task.log").find("'model.task'"), std::string::npos)
      << ReadAll(root_ / "bad_model_task.log");

  // A missing base with make_if_missing off is refused by its path.
  const fs::path missing = root_ / "no_base";
  EXPECT_NE(
      Shell(binary_ + " train --config " + config_ + " --set model.base=" + missing.string() +
                " --set model.make_if_missing=false --set out_dir=" + (root_ / "run").string() +
                " --set output.progress=false --set dashboard.enabled=false",
            root_ / "no_base.log"),
      0);
  const std::string log = ReadAll(root_ / "no_base.log");
  EXPECT_NE(log.find(missing.string()), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(missing / "config.json"));
}

TEST_F(ReasoningPresetE2eTest, ThePresetPretrainsTheReasoningBaseWhenItHasNone) {
  const fs::path base = root_ / "made_base";
  const fs::path out = root_ / "made_run";
  ASSERT_EQ(Shell(binary_ + " train --config " + config_ + " --set model.base=" + base.string() +
                      " --set model.pretrain_steps=2 --set out_dir=" + out.string() +
                      " --set steps=1 --set rollout.queries_per_step=1 --set rollout.width=2" +
                      " --set task.train_problems=20 --set eval.before=false" +
                      " --set eval.after=false --set eval.checkpoints=false" +
                      " --set output.progress=false --set dashboard.enabled=false",
                  root_ / "made.log"),
            0)
      << ReadAll(root_ / "made.log");
  std::ifstream tj(base / "task.json");
  ASSERT_TRUE(tj.good()) << ReadAll(root_ / "made.log");
  EXPECT_EQ(nlohmann::json::parse(tj).value("task", ""), "reasoning");
  EXPECT_NE(ReadAll(root_ / "made.log").find("pretraining one for the reasoning task"),
            std::string::npos);
  EXPECT_EQ(StepLines(out / "metrics.jsonl").size(), 1u);
}

}  // namespace

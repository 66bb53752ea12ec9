// `treepo train` end to end on real processes: a tiny base model (made by `treepo pretrain`),
// the scheduler in process, 2 workers and 1 learner as child processes on loopback. Checks
// that versions advance, every worker ends on the newest version, every node of every step's
// trees was computed by that step's version (sync mode: no segment mixes versions), and that
// a run resumed from a checkpoint continues from its step. Supervision: a learner that dies of
// a config error or of SIGKILL mid-run ends `train` within seconds with the learner's own
// message (the tail of logs/learner.log); an output directory that cannot be written is
// refused before any work.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "common/testing/paths.h"
#include "common/tree/tree_record.h"
#include "tests/e2e_chaos/e2e_util.h"
#include "tests/e2e_train/tiny_train.h"

namespace {

namespace fs = std::filesystem;

using treepo::testing::Shell;
using treepo::testing::StepLines;

std::string ReadAll(const fs::path& p) { return treepo::testing::ReadAll(p.string()); }

class TrainE2eTest : public treepo::testing::TinyBaseSuite<TrainE2eTest> {
 public:
  static constexpr const char* kDirPrefix = "treepo_train_e2e_";

 protected:
  // The `treepo train` command line with tiny settings.
  std::string TrainCommand(const fs::path& out, const std::string& extra) const {
    return binary_ + " train --set model.base=" + (root_ / "base").string() +
           " --set out_dir=" + out.string() +
           " --set rollout.queries_per_step=2 --set rollout.width=2 --set "
           "rollout.segment_tokens=8" +
           " --set rollout.max_depth=2 --set rollout.branch=2 --set task.train_problems=50" +
           " --set learner.lr=1e-3 --set output.checkpoint_every=2 --set output.progress=false" +
           " --set cluster.learners=1 --set cluster.worker_pages=256 " + extra;
  }

  // `treepo train` with tiny settings; returns its exit code (log in <out>.log).
  int Train(const fs::path& out, const std::string& extra) {
    return Shell(TrainCommand(out, extra), out.string() + ".log");
  }

  // Every node of trees/step_N.jsonl was computed by version base + N.
  static void ExpectTreeVersions(const fs::path& out, int64_t first, int64_t last) {
    for (int64_t step = first; step < last; ++step) {
      char name[32];
      std::snprintf(name, sizeof(name), "step_%06lld.jsonl", static_cast<long long>(step));
      auto trees = treepo::ReadTreeFile((out / "trees" / name).string());
      ASSERT_TRUE(trees.ok()) << trees.status().ToString();
      ASSERT_FALSE(trees->empty());
      for (const treepo::TreeRecord& t : *trees) {
        for (const treepo::TreeNodeRecord& n : t.nodes) {
          EXPECT_EQ(n.weight_version, static_cast<uint64_t>(step)) << name << " node " << n.id;
        }
      }
    }
  }
};

TEST_F(TrainE2eTest, VersionsAdvanceWorkersFollowAndResumeContinues) {
  const fs::path out = root_ / "run";
  ASSERT_EQ(Train(out, "--set steps=3 --set eval.problems=4 --set eval.max_new_tokens=32"), 0)
      << ReadAll(out.string() + ".log");

  // Versions advance one per step and every worker ends on the newest.
  const nlohmann::json summary = nlohmann::json::parse(ReadAll(out / "summary.json"));
  EXPECT_EQ(summary["final_version"].get<uint64_t>(), 3u);
  ASSERT_EQ(summary["worker_versions"].size(), 2u);
  for (const auto& [name, v] : summary["worker_versions"].items())
    EXPECT_EQ(v.get<uint64_t>(), 3u) << name;
  const std::vector<nlohmann::json> lines = StepLines(out / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["step"].get<int64_t>(), static_cast<int64_t>(i));
    EXPECT_EQ(lines[i]["weight_version"].get<uint64_t>(), i + 1);
    EXPECT_EQ(lines[i]["rollout_version_min"].get<uint64_t>(), i);
    EXPECT_EQ(lines[i]["rollout_version_max"].get<uint64_t>(), i);
    for (const char* key :
         {"reward_mean", "accuracy", "leaves_per_s", "tokens_per_s", "loss", "clip_fraction",
          "ratio_mean", "ratio_max", "advantage_mean", "advantage_std", "logp_mismatch",
          "grad_norm", "rollout_s", "train_s", "sync_s"}) {
      EXPECT_TRUE(lines[i].contains(key)) << key;
    }
    // Sync mode: logp_old is recomputed with the sampling weights, so the ratio starts at 1.
    EXPECT_NEAR(lines[i]["ratio_mean"].get<double>(), 1.0, 1e-3);
  }
  ExpectTreeVersions(out, 0, 3);
  EXPECT_TRUE(fs::exists(out / "checkpoints/step_000002/model.safetensors"));
  EXPECT_TRUE(fs::exists(out / "checkpoints/step_000003/config.json"));
  EXPECT_TRUE(fs::exists(out / "checkpoints/step_000003/optimizer.safetensors"));
  EXPECT_TRUE(fs::exists(out / "eval_base.json"));
  EXPECT_TRUE(fs::exists(out / "eval_final.json"));
  EXPECT_TRUE(fs::exists(out / "report.md"));

  // Resume from step 2 into a new directory: steps 2 and 3 run on versions 2 and 3.
  const fs::path resumed = root_ / "resumed";
  ASSERT_EQ(Train(resumed,
                  "--set steps=4 --set eval.before=false --set eval.after=false"
                  " --set resume=" +
                      (out / "checkpoints/step_000002").string()),
            0)
      << ReadAll(resumed.string() + ".log");
  const std::vector<nlohmann::json> more = StepLines(resumed / "metrics.jsonl");
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0]["step"].get<int64_t>(), 2);
  EXPECT_EQ(more[1]["weight_version"].get<uint64_t>(), 4u);
  ExpectTreeVersions(resumed, 2, 4);
  const nlohmann::json s2 = nlohmann::json::parse(ReadAll(resumed / "summary.json"));
  EXPECT_EQ(s2["final_version"].get<uint64_t>(), 4u);
  EXPECT_TRUE(fs::exists(resumed / "checkpoints/step_000004/model.safetensors"));
}

TEST_F(TrainE2eTest, UnknownKeyIsAnError) {
  const fs::path out = root_ / "bad";
  EXPECT_NE(Train(out, "--set rollout.widht=3"), 0);
  EXPECT_NE(ReadAll(out.string() + ".log").find("widht"), std::string::npos);
}

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST_F(TrainE2eTest, LearnerConfigErrorIsReportedAtOnceWithTheLearnersMessage) {
  const fs::path out = root_ / "bad_estimator";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(Train(out, "--set learner.estimator=nope --set eval.before=false"), 0);
  const std::string log = ReadAll(out.string() + ".log");
  EXPECT_LT(SecondsSince(start), 30.0) << log;
  EXPECT_NE(log.find("learner exited (exit code 1)"), std::string::npos) << log;
  EXPECT_NE(log.find("nope"), std::string::npos) << log;  // the learner's own words
  EXPECT_EQ(log.find("timed out"), std::string::npos) << log;
}

// learner.on_failure = fail; the default (restart) is tested by tests/e2e_chaos/recovery_e2e_test.
TEST_F(TrainE2eTest, SigkillOfTheLearnerMidRunEndsTrainWithinSeconds) {
  const fs::path out = root_ / "killed_learner";
  const std::string log = out.string() + ".log";
  std::vector<std::string> argv = {"/bin/sh", "-c",
                                   "exec " + TrainCommand(out,
                                                          "--set steps=40 --set "
                                                          "eval.before=false --set "
                                                          "eval.after=false --set "
                                                          "learner.on_failure=fail")};
  auto train = treepo::cluster::ChildProcess::Spawn(argv, log);
  ASSERT_TRUE(train.ok()) << train.status().ToString();
  const std::string metrics = (out / "metrics.jsonl").string();
  // Lines are written whole; a step line is one without "eval".
  auto steps_done = [&] {
    const std::string text = ReadAll(metrics);
    return treepo::testing::CountOf(text, "\"step\"") - treepo::testing::CountOf(text, "\"eval\"");
  };
  ASSERT_TRUE(treepo::testing::WaitFor([&] { return steps_done() >= 1; }, 120000)) << ReadAll(log);
  const pid_t learner = treepo::testing::FindChild(train->pid(), {"learner"});
  ASSERT_GT(learner, 0) << ReadAll(log);
  ASSERT_EQ(::kill(learner, SIGKILL), 0);
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(train->Wait(30000)) << "train did not end:\n" << ReadAll(log);
  EXPECT_LT(SecondsSince(killed), 15.0);
  EXPECT_EQ(train->exit_code(), 1);
  const std::string text = ReadAll(log);
  EXPECT_NE(text.find("learner exited (signal 9)"), std::string::npos) << text;
  EXPECT_NE(text.find("learner.log"), std::string::npos) << text;
  EXPECT_LT(steps_done(), 40);
}

// SIGKILL of `train` mid-run sends the learner SIGTERM; it must not save a step the killed
// scheduler never recorded. The resumed run then continues metrics.jsonl: every step once.
// The learner is paused until the scheduler has sent the next batch and resumed just before
// the kill, so it trains a step the scheduler never records: the case that used to leave a
// gap (the old learner saved that step on SIGTERM).
TEST_F(TrainE2eTest, SigkillOfTrainThenResumeRecordsEveryStepExactlyOnce) {
  const fs::path out = root_ / "killed_train";
  const std::string log = out.string() + ".log";
  std::vector<std::string> argv = {
      "/bin/sh", "-c",
      "exec " + TrainCommand(out,
                             "--set steps=40 --set output.checkpoint_every=3 --set "
                             "eval.before=false --set eval.after=false")};
  auto train = treepo::cluster::ChildProcess::Spawn(argv, log);
  ASSERT_TRUE(train.ok()) << train.status().ToString();
  const fs::path metrics = out / "metrics.jsonl";
  ASSERT_TRUE(treepo::testing::WaitFor([&] { return StepLines(metrics).size() >= 4; }, 120000))
      << ReadAll(log);
  const pid_t learner = treepo::testing::FindChild(train->pid(), {"learner"});
  ASSERT_GT(learner, 0) << ReadAll(log);
  ASSERT_EQ(::kill(learner, SIGSTOP), 0);
  // The trees of the step after the last recorded one are written just before its batch is
  // sent to the (paused) learner.
  ASSERT_TRUE(treepo::testing::WaitFor(
      [&] {
        char name[32];
        std::snprintf(name, sizeof(name), "step_%06zu.jsonl", StepLines(metrics).size());
        return fs::exists(out / "trees" / name);
      },
      60000))
      << ReadAll(log);
  // Resumed, the learner reads the batch and trains it while its parent dies.
  ASSERT_EQ(::kill(learner, SIGCONT), 0);
  ASSERT_EQ(::kill(train->pid(), SIGKILL), 0);
  ASSERT_TRUE(train->Wait(30000));
  // The learner ends on its SIGTERM (PR_SET_PDEATHSIG); its checkpoints are final then.
  // Gone, or a zombie where nothing reaps orphans.
  auto exited = [&] {
    const std::string stat = ReadAll("/proc/" + std::to_string(learner) + "/stat");
    const size_t close = stat.rfind(')');
    return ::kill(learner, 0) != 0 ||
           (close != std::string::npos && stat.compare(close, 3, ") Z") == 0);
  };
  ASSERT_TRUE(treepo::testing::WaitFor(exited, 60000));
  const size_t recorded = StepLines(metrics).size();
  int64_t newest = -1;
  for (const auto& e : fs::directory_iterator(out / "checkpoints")) {
    if (!fs::exists(e.path() / "config.json")) continue;
    newest = std::max<int64_t>(newest, std::stoll(e.path().filename().string().substr(5)));
  }
  ASSERT_GE(newest, 1) << ReadAll(log);
  // No checkpoint is ahead of the record: step newest - 1 has its line.
  EXPECT_LE(newest, static_cast<int64_t>(recorded));
  char dir[32];
  std::snprintf(dir, sizeof(dir), "step_%06lld", static_cast<long long>(newest));
  const int64_t steps = newest + 2;
  ASSERT_EQ(Train(out, "--set steps=" + std::to_string(steps) +
                           " --set eval.before=false --set eval.after=false"
                           " --set eval.checkpoints=false --set resume=" +
                           (out / "checkpoints" / dir).string()),
            0)
      << ReadAll(out.string() + ".log");
  const std::vector<nlohmann::json> lines = StepLines(metrics);
  ASSERT_EQ(lines.size(), static_cast<size_t>(steps)) << ReadAll(metrics);
  for (int64_t s = 0; s < steps; ++s) EXPECT_EQ(lines[s]["step"].get<int64_t>(), s);
}

// A train prompt too long for the model's context (128 tokens here) is skipped with a warning
// and counted in summary.json, as `treepo rollout` does, instead of failing a worker's task.
TEST_F(TrainE2eTest, AnOverLongTrainPromptIsSkippedAndCounted) {
  const fs::path out = root_ / "long_prompt";
  const fs::path prompts = root_ / "long_prompts.jsonl";
  {
    std::ofstream p(prompts);
    p << "{\"prompt\": \"3+4=\", \"answer\": \"7\"}\n";
    p << "{\"prompt\": \"" << std::string(3000, '7') << "\", \"answer\": \"1\"}\n";
    p << "{\"prompt\": \"2+5=\", \"answer\": \"7\"}\n";
  }
  ASSERT_EQ(Train(out,
                  "--set steps=1 --set eval.before=false --set eval.after=false"
                  " --set task.prompts=" +
                      prompts.string()),
            0)
      << ReadAll(out.string() + ".log");
  const std::string log = ReadAll(out.string() + ".log");
  EXPECT_NE(log.find("1 of 3 train prompts skipped"), std::string::npos) << log;
  const nlohmann::json s = nlohmann::json::parse(ReadAll(out / "summary.json"));
  EXPECT_EQ(s["prompts_skipped"], 1) << s.dump();
  EXPECT_EQ(StepLines(out / "metrics.jsonl").size(), 1u);
}

TEST_F(TrainE2eTest, AnOutDirThatCannotBeWrittenIsRefusedBeforeAnyWork) {
  // A path under a regular file can never be a directory, whoever runs the test (root too).
  const fs::path file = root_ / "a_file";
  std::ofstream(file) << "x";
  const fs::path out = file / "run";
  const auto start = std::chrono::steady_clock::now();
  // A missing base model would be pretrained first: the check must come before it.
  const std::string cmd = binary_ + " train --set model.base=" + (root_ / "no_base").string() +
                          " --set out_dir=" + out.string();
  EXPECT_EQ(Shell(cmd, root_ / "bad_out.log"), 1);
  const std::string log = ReadAll(root_ / "bad_out.log");
  EXPECT_LT(SecondsSince(start), 10.0);
  EXPECT_NE(log.find("out_dir"), std::string::npos) << log;
  EXPECT_NE(log.find("cannot create"), std::string::npos) << log;
  EXPECT_EQ(log.find("pretraining"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(root_ / "no_base"));
}

}  // namespace

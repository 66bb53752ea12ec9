// Learner and head recovery on real processes (tiny model, `treepo train` on loopback):
//   - the learner is SIGKILLed while it trains a step: `train` restarts it from its newest
//     complete checkpoint, sends it the steps since again, and the run records every step once;
//   - one of two data-parallel learner ranks is SIGKILLed mid-step: both ranks are restarted
//     together (a new group) and the run records every step once;
//   - the learner is SIGSTOPped: its heartbeats stop, it is declared dead and restarted;
//   - the head (`train` itself) is SIGKILLed mid-run: `treepo train --resume RUN_DIR` continues
//     from the newest complete checkpoint, and metrics.jsonl holds every step once, with the
//     prompts of each step those of an undisturbed run (the dataset cursor continues); a worker
//     started by hand with --rejoin-timeout-ms registers with the new head.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "common/tree/tree_record.h"
#include "tests/e2e_chaos/e2e_util.h"
#include "tests/e2e_train/tiny_train.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;
using cluster::ChildProcess;
using testing::ReadAll;
using testing::WaitFor;

constexpr int kQueries = 4, kWidth = 4;

class RecoveryE2eTest : public testing::TinyBaseSuite<RecoveryE2eTest> {
 public:
  static constexpr const char* kDirPrefix = "treepo_recovery_e2e_";

 protected:
  std::vector<std::string> TrainArgv(const std::string& out, int steps, int checkpoint_every,
                                     int learners = 1) {
    std::vector<std::string> argv = {binary_, "train"};
    for (const std::string& s : {"model.base=" + (root_ / "base").string(),
                                 "out_dir=" + out,
                                 "steps=" + std::to_string(steps),
                                 "rollout.queries_per_step=" + std::to_string(kQueries),
                                 "rollout.width=" + std::to_string(kWidth),
                                 std::string("rollout.segment_tokens=8"),
                                 std::string("rollout.max_depth=2"),
                                 std::string("rollout.branch=2"),
                                 std::string("task.train_problems=64"),
                                 std::string("learner.lr=1e-3"),
                                 std::string("cluster.workers=2"),
                                 "cluster.learners=" + std::to_string(learners),
                                 std::string("cluster.worker_pages=256"),
                                 std::string("scheduler.heartbeat_interval_ms=200"),
                                 std::string("scheduler.heartbeat_timeout_ms=3000"),
                                 "output.checkpoint_every=" + std::to_string(checkpoint_every),
                                 std::string("eval.before=false"),
                                 std::string("eval.after=false"),
                                 std::string("eval.checkpoints=false"),
                                 std::string("output.report=false"),
                                 std::string("output.progress=false"),
                                 std::string("dashboard.enabled=false")}) {
      argv.push_back("--set");
      argv.push_back(s);
    }
    return argv;
  }

  // A train run of `steps` steps (checkpoints every 2) in root_/NAME, running and with its
  // learner (rank 0) past the checkpoint of step `checkpoint`: the pid of the learner of rank
  // `kill_rank`, or 0 (and a failure).
  struct LearnerRun {
    std::string out, log, learner_log;
    std::optional<ChildProcess> train;
    pid_t learner = 0;
  };
  LearnerRun StartUntilCheckpoint(const std::string& name, int steps, int checkpoint,
                                  int learners = 1, int kill_rank = 0) {
    LearnerRun r;
    const fs::path dir = root_ / name;
    fs::create_directories(dir);
    r.out = (dir / "run").string();
    r.log = (dir / "train.log").string();
    r.learner_log = r.out + (learners == 1 ? "/logs/learner.log" : "/logs/learner-0.log");
    auto train = ChildProcess::Spawn(TrainArgv(r.out, steps, 2, learners), r.log);
    if (!train.ok()) {
      ADD_FAILURE() << train.status().ToString();
      return r;
    }
    r.train.emplace(std::move(*train));
    char ckpt[32];
    std::snprintf(ckpt, sizeof(ckpt), "step_%06d", checkpoint);
    const bool seen = WaitFor(
        [&] {
          return ReadAll(r.learner_log).find(ckpt) != std::string::npos || !r.train->Running();
        },
        180000);
    if (!seen || !r.train->Running()) {
      ADD_FAILURE() << "no checkpoint " << ckpt << " while train ran\n" << ReadAll(r.log);
      return r;
    }
    r.learner =
        learners == 1
            ? testing::FindChild(r.train->pid(), {"learner"})
            : testing::FindChild(r.train->pid(), {"learner", "rank=" + std::to_string(kill_rank)});
    EXPECT_GT(r.learner, 0);
    return r;
  }

  // Every step 0..steps-1 exactly once, in order, each with every query's w leaves and the
  // weight version it trained to.
  static void ExpectEveryStepOnce(const std::string& metrics, int steps) {
    const std::vector<nlohmann::json> lines = testing::StepLines(metrics);
    ASSERT_EQ(lines.size(), static_cast<size_t>(steps)) << ReadAll(metrics);
    for (int s = 0; s < steps; ++s) {
      EXPECT_EQ(lines[s]["step"].get<int>(), s);
      EXPECT_EQ(lines[s]["leaves"].get<int>(), kQueries * kWidth) << "step " << s;
      EXPECT_EQ(lines[s]["weight_version"].get<uint64_t>(), static_cast<uint64_t>(s + 1));
      EXPECT_EQ(lines[s]["rollout_version_min"].get<uint64_t>(), static_cast<uint64_t>(s));
      EXPECT_EQ(lines[s]["rollout_version_max"].get<uint64_t>(), static_cast<uint64_t>(s));
      EXPECT_EQ(lines[s]["prompts_drawn"].get<int64_t>(), int64_t{s + 1} * kQueries);
    }
  }

  // The prompts of step `step`'s trees, in order.
  static std::vector<std::string> StepPrompts(const std::string& out, int step) {
    auto trees = ReadTreeFile(testing::StepTreesPath(out, step));
    EXPECT_TRUE(trees.ok()) << trees.status().ToString();
    std::vector<std::string> prompts;
    if (!trees.ok()) return prompts;
    for (const TreeRecord& t : *trees) prompts.push_back(t.prompt);
    return prompts;
  }
};

TEST_F(RecoveryE2eTest, ALearnerKilledMidStepIsRestartedAndEveryStepIsRecordedOnce) {
  constexpr int kSteps = 8;
  // The checkpoint of step 4 is written when TreeBatch 4 arrives, just before the learner
  // trains step 4: killing it then kills it mid-step.
  LearnerRun run = StartUntilCheckpoint("learner_kill", kSteps, 4);
  ASSERT_GT(run.learner, 0);
  const std::string &out = run.out, &log = run.log, &learner_log = run.learner_log;
  std::optional<ChildProcess>& train = run.train;
  const pid_t learner = run.learner;
  ASSERT_EQ(::kill(learner, SIGKILL), 0);
  EXPECT_LT(testing::StepLines(out + "/metrics.jsonl").size(), static_cast<size_t>(kSteps));

  ASSERT_TRUE(train->Wait(300000)) << ReadAll(log);
  ASSERT_EQ(train->exit_code(), 0) << ReadAll(log);
  const std::string text = ReadAll(log);
  EXPECT_NE(text.find("learner exited (signal 9)"), std::string::npos) << text;
  EXPECT_NE(text.find("RL: learner restarted at step 4"), std::string::npos) << text;
  EXPECT_NE(ReadAll(learner_log).find("resumed from"), std::string::npos);
  ExpectEveryStepOnce(out + "/metrics.jsonl", kSteps);
  // Every checkpoint holds the dataset cursor of its step.
  for (int s = 2; s <= kSteps; s += 2) {
    char name[64];
    std::snprintf(name, sizeof(name), "/checkpoints/step_%06d/state.json", s);
    const std::string text = ReadAll(out + name);
    ASSERT_FALSE(text.empty()) << name << " is missing\n" << ReadAll(learner_log);
    const nlohmann::json st = nlohmann::json::parse(text);
    EXPECT_EQ(st["step"].get<int>(), s);
    EXPECT_EQ(st["prompts_drawn"].get<int64_t>(), int64_t{s} * kQueries) << name;
  }
}

TEST_F(RecoveryE2eTest, ADataParallelRankKilledMidStepRestartsBothRanksAndEveryStepOnce) {
  constexpr int kSteps = 6;
  // Rank 1 dies while both train step 2; rank 0 is left waiting in the gradient all-reduce.
  LearnerRun run = StartUntilCheckpoint("rank_kill", kSteps, 2, /*learners=*/2, /*kill_rank=*/1);
  ASSERT_GT(run.learner, 0);
  ASSERT_EQ(::kill(run.learner, SIGKILL), 0);
  ASSERT_TRUE(run.train->Wait(300000)) << ReadAll(run.log);
  ASSERT_EQ(run.train->exit_code(), 0) << ReadAll(run.log);
  const std::string text = ReadAll(run.log);
  EXPECT_NE(text.find("learner-1 exited (signal 9)"), std::string::npos) << text;
  EXPECT_NE(text.find("restarting 2 learner ranks"), std::string::npos) << text;
  EXPECT_NE(text.find("RL: learner restarted at step 2"), std::string::npos) << text;
  // Both ranks of the new group resumed from the checkpoint and met again.
  for (const char* rank_log : {"/logs/learner-0.log", "/logs/learner-1.log"}) {
    const std::string l = ReadAll(run.out + rank_log);
    EXPECT_NE(l.find("resumed from"), std::string::npos) << rank_log << "\n" << l;
    EXPECT_NE(l.find("restart-1"), std::string::npos) << rank_log << "\n" << l;
  }
  ExpectEveryStepOnce(run.out + "/metrics.jsonl", kSteps);
}

TEST_F(RecoveryE2eTest, AHungLearnerIsDeclaredDeadByItsHeartbeatsAndRestarted) {
  constexpr int kSteps = 8;
  LearnerRun run = StartUntilCheckpoint("learner_hang", kSteps, 2);
  ASSERT_GT(run.learner, 0);
  const std::string &out = run.out, &log = run.log;
  std::optional<ChildProcess>& train = run.train;
  const pid_t learner = run.learner;
  // Paused, it neither exits nor heartbeats: only the heartbeat timeout (3 s) can tell.
  ASSERT_EQ(::kill(learner, SIGSTOP), 0);
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(testing::WaitForText(log, "RL: learner restarted", 60000)) << ReadAll(log);
  const double detected_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped).count();
  EXPECT_LT(detected_s, 30.0);
  ASSERT_TRUE(train->Wait(300000)) << ReadAll(log);
  ASSERT_EQ(train->exit_code(), 0) << ReadAll(log);
  const std::string text = ReadAll(log);
  EXPECT_NE(text.find("heartbeat_timeout_ms): declared dead"), std::string::npos) << text;
  EXPECT_NE(text.find("RL: learner restarted at step 2"), std::string::npos) << text;
  ExpectEveryStepOnce(out + "/metrics.jsonl", kSteps);
}

TEST_F(RecoveryE2eTest, AHeadKilledMidRunIsResumedWithEveryStepOnceAndTheSamePrompts) {
  constexpr int kSteps = 12;
  const fs::path dir = root_ / "head_kill";
  fs::create_directories(dir);
  // The undisturbed run the resumed one must follow.
  const std::string ref = (dir / "ref").string();
  auto whole = ChildProcess::Spawn(TrainArgv(ref, kSteps, 1), (dir / "ref.log").string());
  ASSERT_TRUE(whole.ok());
  ASSERT_TRUE(whole->Wait(300000)) << ReadAll((dir / "ref.log").string());
  ASSERT_EQ(whole->exit_code(), 0) << ReadAll((dir / "ref.log").string());

  const std::string out = (dir / "run").string(), log = (dir / "train.log").string();
  auto train = ChildProcess::Spawn(TrainArgv(out, kSteps, 1), log);
  ASSERT_TRUE(train.ok());
  ASSERT_TRUE(WaitFor(
      [&] { return testing::StepLines(out + "/metrics.jsonl").size() >= 3 || !train->Running(); },
      180000))
      << ReadAll(log);
  ASSERT_TRUE(train->Running()) << ReadAll(log);
  // A worker of its own (not a child of train): it must outlive the head and join the new one.
  std::string ep = ReadAll(out + "/endpoint");
  ep.erase(ep.find_last_not_of('\n') + 1);
  const std::string rejoiner_log = (dir / "rejoiner.log").string();
  auto rejoiner = ChildProcess::Spawn(
      {binary_, "worker", "--scheduler", ep, "--model", (root_ / "base").string(), "--pages", "256",
       "--name", "rejoiner", "--heartbeat-ms", "100", "--rejoin-timeout-ms", "120000"},
      rejoiner_log);
  ASSERT_TRUE(rejoiner.ok());
  ASSERT_TRUE(testing::WaitForText(rejoiner_log, "registered as worker", 30000))
      << ReadAll(rejoiner_log);
  train->Signal(SIGKILL);
  ASSERT_TRUE(train->Wait(10000));
  const size_t done_before = testing::StepLines(out + "/metrics.jsonl").size();
  EXPECT_LT(done_before, static_cast<size_t>(kSteps));
  // Its children follow it (they get SIGTERM when it dies).
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadAll(out + "/logs/learner.log").find("stopped by a signal") != std::string::npos;
      },
      30000))
      << ReadAll(out + "/logs/learner.log");

  const std::string resume_log = (dir / "resume.log").string();
  auto resumed = ChildProcess::Spawn({binary_, "train", "--resume", out}, resume_log);
  ASSERT_TRUE(resumed.ok());
  ASSERT_TRUE(resumed->Wait(300000)) << ReadAll(resume_log);
  ASSERT_EQ(resumed->exit_code(), 0) << ReadAll(resume_log);
  EXPECT_NE(ReadAll(resume_log).find("resuming from"), std::string::npos);
  EXPECT_NE(ReadAll(resume_log).find("'rejoiner' registered"), std::string::npos)
      << ReadAll(rejoiner_log);
  // It served the new head until the end of the run, which shut it down.
  EXPECT_TRUE(rejoiner->Wait(30000)) << ReadAll(rejoiner_log);
  EXPECT_EQ(rejoiner->exit_code(), 0) << ReadAll(rejoiner_log);
  EXPECT_NE(ReadAll(rejoiner_log).find("shutdown requested (training complete)"),
            std::string::npos);
  ExpectEveryStepOnce(out + "/metrics.jsonl", kSteps);
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_EQ(StepPrompts(out, s), StepPrompts(ref, s)) << "step " << s;
  }
}

}  // namespace
}  // namespace treepo

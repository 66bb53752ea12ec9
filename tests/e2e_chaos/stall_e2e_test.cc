// Task deadlines end to end: `treepo scheduler` and three `treepo worker` processes on
// loopback. One worker is SIGSTOPped for good once it has delivered results (its heartbeats
// stop too), one takes tasks and never answers them while it keeps heartbeating
// (--debug-drop-tasks). The rollout still completes on the third, with every query's w
// leaves, and the silent worker's tasks are taken back at their deadline. And `treepo rollout`
// whose only worker process is killed mid-run ends at once with the worker's exit status; one
// of two killed workers has its tasks re-dispatched at once, not at the heartbeat timeout.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "cluster/child_process.h"
#include "common/testing/paths.h"
#include "common/tree/tree_record.h"
#include "tests/e2e_chaos/e2e_util.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;
using cluster::ChildProcess;
using testing::ReadAll;
using testing::WaitForText;

class StallE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = testing::TreepoBinary();
    const fs::path shared = testing::SharedDir();
    model_ = (shared / "models/stories260K/stories260K.bin").string();
    tokenizer_ = (shared / "models/stories260K/tok512.bin").string();
    if (!fs::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    if (!fs::exists(model_)) GTEST_SKIP() << "needs " << model_;
    dir_ = testing::FreshTempDir("stall_e2e");
    prompts_ = dir_ + "/prompts.jsonl";
    std::ofstream p(prompts_);
    const char* texts[] = {"Once upon a time", "The little dog", "Lily and Tom went to the park",
                           "One day, a cat",   "The sun was",    "Tim had a red ball"};
    for (int i = 0; i < 6; ++i) {
      p << "{\"id\": \"q" << i << "\", \"prompt\": \"" << texts[i] << "\", \"answer\": \"" << i
        << "\"}\n";
    }
  }
  void TearDown() override {
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }

  std::string dir_, binary_, model_, tokenizer_, prompts_;
};

TEST_F(StallE2eTest, APausedWorkerAndOneThatNeverAnswersDoNotStallTheRollout) {
  const std::string out = dir_ + "/trees.jsonl", slog = dir_ + "/scheduler.log";
  {
    std::ofstream c(dir_ + "/scheduler.toml");
    c << "model = \"" << model_ << "\"\ntokenizer = \"" << tokenizer_ << "\"\nprompts = \""
      << prompts_ << "\"\nout = \"" << out << "\"\nwidth = 8\nsegment_tokens = 16\n"
      << "max_depth = 4\nseed = 3\nmin_workers = 3\nmax_concurrent_queries = 6\n"
      << "heartbeat_interval_ms = 100\nheartbeat_timeout_ms = 1000\n"
      << "task_deadline_floor_ms = 3000\n";
  }
  auto sched = ChildProcess::Spawn({binary_, "scheduler", "--config", dir_ + "/scheduler.toml",
                                    "--endpoint-file", dir_ + "/endpoint"},
                                   slog);
  ASSERT_TRUE(sched.ok()) << sched.status().ToString();
  ASSERT_TRUE(WaitForText(dir_ + "/endpoint", "tcp://", 20000)) << ReadAll(slog);
  std::string ep = ReadAll(dir_ + "/endpoint");
  ep.erase(ep.find_last_not_of('\n') + 1);

  auto worker = [&](const std::string& name, bool drop) {
    std::vector<std::string> argv = {binary_,   "worker", "--scheduler", ep,
                                     "--model", model_,   "--name",      name};
    if (drop) argv.push_back("--debug-drop-tasks");
    return ChildProcess::Spawn(argv, dir_ + "/" + name + ".log");
  };
  // Registration order fixes the ids: sleeper 1, mute 2, worker 3.
  auto sleeper = worker("sleeper", false);
  ASSERT_TRUE(sleeper.ok());
  ASSERT_TRUE(WaitForText(slog, "worker 1 'sleeper' registered", 20000)) << ReadAll(slog);
  auto mute = worker("mute", true);
  ASSERT_TRUE(mute.ok());
  ASSERT_TRUE(WaitForText(slog, "worker 2 'mute' registered", 20000)) << ReadAll(slog);
  auto good = worker("good", false);
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(WaitForText(slog, "worker 1 delivered its first results", 30000)) << ReadAll(slog);
  sleeper->Signal(SIGSTOP);  // for good: no results, no heartbeats

  ASSERT_TRUE(sched->Wait(90000)) << "the rollout stalled:\n" << ReadAll(slog);
  EXPECT_EQ(sched->exit_code(), 0) << ReadAll(slog);
  const std::string log = ReadAll(slog);
  EXPECT_NE(log.find("missed its deadline on worker 2"), std::string::npos) << log;
  EXPECT_NE(log.find("worker 1 missed heartbeats"), std::string::npos) << log;
  auto trees = ReadTreeFile(out);
  ASSERT_TRUE(trees.ok()) << trees.status().ToString();
  ASSERT_EQ(trees->size(), 6u);
  std::set<uint32_t> workers;
  for (const TreeRecord& t : *trees) {
    EXPECT_TRUE(t.Validate().ok()) << t.Validate().ToString();
    EXPECT_EQ(t.leaves.size(), 8u) << t.query_id;
    for (const TreeNodeRecord& n : t.nodes) workers.insert(n.worker);
  }
  EXPECT_EQ(workers.count(2), 0u);  // the mute worker answered nothing
  EXPECT_EQ(workers.count(0), 0u);
  sleeper->Signal(SIGKILL);
  EXPECT_TRUE(good->Wait(10000));
}

TEST_F(StallE2eTest, RolloutEndsAtOnceWhenItsLastWorkerProcessExits) {
  // A rollout long enough to be running when its only worker process is SIGKILLed.
  const std::string log = dir_ + "/rollout.log";
  auto rollout =
      ChildProcess::Spawn({binary_, "rollout", "--model", model_, "--tokenizer", tokenizer_,
                           "--prompts", prompts_, "--workers", "1", "--set", "width=64", "--set",
                           "max_depth=8", "--set", "segment_tokens=16", "--set", "progress=false"},
                          log);
  ASSERT_TRUE(rollout.ok());
  pid_t worker = -1;
  ASSERT_TRUE(testing::WaitFor(
      [&] { return (worker = testing::FindChild(rollout->pid(), {"worker"})) > 0; }, 10000))
      << ReadAll(log);
  ASSERT_TRUE(WaitForText(log, "rolling out", 10000)) << ReadAll(log);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(rollout->Wait(25000)) << "still running without workers:\n" << ReadAll(log);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(rollout->exit_code(), 1);
  const std::string text = ReadAll(log);
  EXPECT_NE(text.find("worker-1 exited (signal 9)"), std::string::npos) << text;
  EXPECT_NE(text.find("every worker process has exited"), std::string::npos) << text;
}

// A worker process the launcher sees exit is declared dead at once: with no task deadlines
// and a 10-minute heartbeat timeout, only that path can hand its tasks to the other worker
// in time. Placement keeps each query's tasks with the worker holding its KV (policy "wait"),
// so the killed worker holds tasks of its queries when it dies, in flight or queued for it
// (the cost policy may already have moved them all to the other worker, which leaves nothing
// to re-dispatch).
TEST_F(StallE2eTest, AKilledWorkersTasksAreRedispatchedAtOnceNotAtTheHeartbeatTimeout) {
  const std::string log = dir_ + "/rollout_gone.log", out = dir_ + "/gone.jsonl";
  auto rollout = ChildProcess::Spawn({binary_,       "rollout",
                                      "--model",     model_,
                                      "--tokenizer", tokenizer_,
                                      "--prompts",   prompts_,
                                      "--workers",   "2",
                                      "--out",       out,
                                      "--set",       "width=64",
                                      "--set",       "max_depth=8",
                                      "--set",       "segment_tokens=16",
                                      "--set",       "progress=false",
                                      "--set",       "heartbeat_timeout_ms=600000",
                                      "--set",       "task_deadline_floor_ms=0",
                                      "--set",       "placement_policy=wait"},
                                     log);
  ASSERT_TRUE(rollout.ok());
  pid_t worker = -1;
  ASSERT_TRUE(testing::WaitFor(
      [&] { return (worker = testing::FindChild(rollout->pid(), {"worker-1"})) > 0; }, 10000))
      << ReadAll(log);
  // Both workers delivered results: each holds queries with tasks in flight (a query's tasks
  // stay where its KV is, and 6 queries of 8 segments each are far from done). Bounds are
  // generous for sanitizer builds on a loaded machine; what matters is that they are far below
  // the 600 s heartbeat timeout.
  ASSERT_TRUE(WaitForText(log, "delivered its first results", 240000, 2)) << ReadAll(log);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(rollout->Wait(240000)) << "the killed worker's tasks were not re-dispatched:\n"
                                     << ReadAll(log);
  EXPECT_LT(std::chrono::steady_clock::now() - killed, std::chrono::seconds(240));
  EXPECT_EQ(rollout->exit_code(), 0) << ReadAll(log);
  const std::string text = ReadAll(log);
  EXPECT_NE(text.find("worker-1 exited (signal 9)"), std::string::npos) << text;
  EXPECT_NE(text.find("its process exited: declared dead"), std::string::npos) << text;
  EXPECT_EQ(text.find("missed heartbeats"), std::string::npos) << text;
  // It held tasks when it died, in flight or queued for its KV (it may be between batches):
  // only the new path could hand them to worker-2.
  const size_t gone = text.find(" gone: ");
  ASSERT_NE(gone, std::string::npos) << text;
  const int in_flight = std::stoi(text.substr(gone + 7));
  const size_t requeued = text.find(" in-flight tasks requeued, ", gone);
  ASSERT_NE(requeued, std::string::npos) << text;
  const int queued = std::stoi(text.substr(requeued + 27));
  EXPECT_GT(in_flight + queued, 0) << text;
  auto trees = ReadTreeFile(out);
  ASSERT_TRUE(trees.ok()) << trees.status().ToString();
  ASSERT_EQ(trees->size(), 6u);
  for (const TreeRecord& t : *trees) EXPECT_EQ(t.leaves.size(), 64u) << t.query_id;
}

}  // namespace
}  // namespace treepo

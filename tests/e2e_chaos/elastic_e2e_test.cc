// Elastic workers on real processes: a `treepo train` (tiny model) starts with 2 workers; the
// test starts 2 more by hand while it runs (they must get the current weights at once and
// deliver results within the run), then SIGTERMs 3 of the 4 (one of train's own children and
// both extra ones): each must drain, be told to go, deregister and exit 0, and the scheduler
// must forget each at once (never by the heartbeat timeout, which is set far beyond the run).
// The run must finish every step with every query's w leaves, node versions consistent (sync
// mode: every node of step s computed by version s), and nodes computed by the extra workers.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "common/testing/paths.h"
#include "common/tree/tree_record.h"
#include "tests/e2e_chaos/e2e_util.h"
#include "tests/e2e_train/tiny_train.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;
using cluster::ChildProcess;
using testing::ReadAll;
using testing::WaitFor;

constexpr int kSteps = 40, kQueries = 4, kWidth = 4;

class ElasticE2eTest : public testing::TinyBaseSuite<ElasticE2eTest> {
 public:
  static constexpr const char* kDirPrefix = "treepo_elastic_e2e_";
};

// The scheduler id of the worker named `name` (its newest registration), or "".
std::string WorkerIdOf(const std::string& log, const std::string& name) {
  std::smatch m;
  std::string id;
  const std::regex re("worker ([0-9]+) '" + name + "' registered");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
       ++it) {
    id = (*it)[1];
  }
  return id;
}

TEST_F(ElasticE2eTest, ScaleFromTwoToFourToOneWorkersLosesNothing) {
  const fs::path dir = root_ / "scale";
  fs::create_directories(dir);
  const std::string out = (dir / "run").string(), log = (dir / "train.log").string();
  std::vector<std::string> argv = {binary_, "train"};
  for (const std::string& s :
       {"model.base=" + (root_ / "base").string(), "out_dir=" + out,
        "steps=" + std::to_string(kSteps), "rollout.queries_per_step=" + std::to_string(kQueries),
        "rollout.width=" + std::to_string(kWidth), std::string("rollout.segment_tokens=8"),
        std::string("rollout.max_depth=3"), std::string("rollout.branch=2"),
        std::string("task.train_problems=64"), std::string("learner.lr=1e-3"),
        std::string("cluster.workers=2"), std::string("cluster.worker_pages=256"),
        // Far beyond the run: a worker that leaves must be forgotten on its Deregister.
        std::string("scheduler.heartbeat_interval_ms=200"),
        std::string("scheduler.heartbeat_timeout_ms=600000"), std::string("eval.before=false"),
        std::string("eval.after=false"), std::string("eval.checkpoints=false"),
        std::string("output.checkpoint_every=0"), std::string("output.report=false"),
        std::string("output.progress=false")}) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  auto train = ChildProcess::Spawn(argv, log);
  ASSERT_TRUE(train.ok()) << train.status().ToString();
  const std::string metrics = out + "/metrics.jsonl";
  auto steps_done = [&] { return static_cast<int>(testing::StepLines(metrics).size()); };
  ASSERT_TRUE(WaitFor([&] { return steps_done() >= 1 || !train->Running(); }, 120000))
      << ReadAll(log);
  ASSERT_TRUE(train->Running()) << ReadAll(log);
  std::string ep = ReadAll(out + "/endpoint");
  ep.erase(ep.find_last_not_of('\n') + 1);

  // 2 -> 4: two workers join the running job.
  std::map<std::string, ChildProcess> extra;
  for (const std::string name : {"extra-1", "extra-2"}) {
    auto w = ChildProcess::Spawn({binary_, "worker", "--scheduler", ep, "--model",
                                  (root_ / "base").string(), "--pages", "256", "--name", name},
                                 (dir / (name + ".log")).string());
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    extra.emplace(name, std::move(*w));
  }
  std::map<std::string, std::string> ids;
  for (const std::string name : {"extra-1", "extra-2"}) {
    ASSERT_TRUE(WaitFor(
        [&] {
          ids[name] = WorkerIdOf(ReadAll(log), name);
          return (!ids[name].empty() &&
                  ReadAll(log).find("worker " + ids[name] + " delivered its first results") !=
                      std::string::npos) ||
                 !train->Running();
        },
        120000))
        << name << " delivered no results\n"
        << ReadAll(log) << ReadAll((dir / (name + ".log")).string());
    ASSERT_TRUE(train->Running()) << ReadAll(log);
  }
  const int at_scale_down = steps_done();
  std::cout << "joiners delivered results by step " << at_scale_down << " of " << kSteps << "\n";
  EXPECT_LT(at_scale_down, kSteps - 2) << "the joins came too late to test the leaves";

  // 4 -> 1: both extra workers and train's worker-1 leave (SIGTERM: drain, deregister).
  const pid_t w1 = testing::FindChild(train->pid(), {"worker", "worker-1"});
  ASSERT_GT(w1, 0);
  ids["worker-1"] = WorkerIdOf(ReadAll(log), "worker-1");
  for (auto& [name, w] : extra) w.Signal(SIGTERM);
  ::kill(w1, SIGTERM);
  for (auto& [name, w] : extra) {
    ASSERT_TRUE(w.Wait(60000)) << name << " did not leave\n"
                               << ReadAll((dir / (name + ".log")).string());
    EXPECT_EQ(w.exit_code(), 0) << ReadAll((dir / (name + ".log")).string());
  }
  for (const std::string name : {"extra-1", "extra-2", "worker-1"}) {
    EXPECT_TRUE(
        testing::WaitForText(log, "worker " + ids[name] + " '" + name + "' deregistered", 60000))
        << name << "\n"
        << ReadAll(log);
    EXPECT_NE(ReadAll(log).find("worker " + ids[name] + " '" + name + "' drained in"),
              std::string::npos)
        << name;
  }

  std::cout << "3 workers left by step " << steps_done() << "\n";
  ASSERT_TRUE(train->Wait(300000)) << ReadAll(log);
  ASSERT_EQ(train->exit_code(), 0) << ReadAll(log);
  const std::string text = ReadAll(log);
  EXPECT_EQ(text.find("missed heartbeats"), std::string::npos) << text;
  EXPECT_EQ(text.find("declared dead"), std::string::npos) << text;
  for (const std::string name : {"extra-1", "extra-2"}) {
    const std::string wlog = ReadAll((dir / (name + ".log")).string());
    EXPECT_EQ(wlog.find("task is for weight version"), std::string::npos) << name << wlog;
    EXPECT_NE(wlog.find("deregistering (drained)"), std::string::npos) << name << wlog;
  }

  // Every step, once, in order, with every query's w leaves and one weight version per step.
  const std::vector<nlohmann::json> lines = testing::StepLines(metrics);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kSteps));
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_EQ(lines[s]["step"].get<int>(), s);
    EXPECT_EQ(lines[s]["leaves"].get<int>(), kQueries * kWidth) << "step " << s;
    EXPECT_EQ(lines[s]["rollout_version_min"].get<uint64_t>(), static_cast<uint64_t>(s));
    EXPECT_EQ(lines[s]["rollout_version_max"].get<uint64_t>(), static_cast<uint64_t>(s));
    EXPECT_EQ(lines[s]["weight_version"].get<uint64_t>(), static_cast<uint64_t>(s + 1));
  }
  int64_t migrations = 0, recomputed = 0;
  for (const nlohmann::json& l : lines) {
    migrations += l.value("kv_migrations", int64_t{0});
    recomputed += l.value("tokens_recomputed", int64_t{0});
  }
  std::cout << "KV migrations " << migrations << ", tokens recomputed " << recomputed << "\n";
  std::set<uint32_t> computed_by;
  for (int s = 0; s < kSteps; ++s) {
    const std::string name = testing::StepTreesPath(out, s);
    auto trees = ReadTreeFile(name);
    ASSERT_TRUE(trees.ok()) << trees.status().ToString();
    ASSERT_EQ(trees->size(), static_cast<size_t>(kQueries)) << name;
    for (const TreeRecord& t : *trees) {
      EXPECT_TRUE(t.Validate().ok()) << name << ": " << t.Validate().ToString();
      EXPECT_EQ(t.leaves.size(), static_cast<size_t>(kWidth)) << name << " " << t.query_id;
      for (const TreeNodeRecord& n : t.nodes) {
        EXPECT_EQ(n.weight_version, static_cast<uint64_t>(s)) << name << " node " << n.id;
        computed_by.insert(n.worker);
      }
    }
  }
  for (const std::string name : {"extra-1", "extra-2"}) {
    EXPECT_EQ(computed_by.count(static_cast<uint32_t>(std::stoul(ids[name]))), 1u)
        << name << " computed no node";
  }
}

}  // namespace
}  // namespace treepo

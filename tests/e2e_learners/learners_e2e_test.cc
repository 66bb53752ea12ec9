// `treepo train` with learners other than the one built-in rank, end to end on real processes:
// - cluster.learners = 2: two learner processes, each training on its shard of every step's
//   trees and all-reducing over Gloo, with the per-step weight-hash check on; rank 0
//   publishes, reports and checkpoints;
// - cluster.learner_command = examples/torch_learner.py: a PyTorch learner that talks to the
//   scheduler only through libtreepo_client (the Python ctypes package), trains with the
//   clipped loss and publishes each version, over CURVE (ephemeral keys from `train`).
// Both: versions advance one per step, every worker ends on the newest version, every node
// of step N's trees was computed by version N (sync mode).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/testing/paths.h"
#include "common/tree/tree_record.h"
#include "tests/e2e_chaos/e2e_util.h"
#include "tests/e2e_train/tiny_train.h"

namespace {

namespace fs = std::filesystem;

using treepo::testing::Shell;
using treepo::testing::StepLines;

std::string ReadAll(const fs::path& p) { return treepo::testing::ReadAll(p.string()); }

class LearnersE2eTest : public treepo::testing::TinyBaseSuite<LearnersE2eTest> {
 public:
  static constexpr const char* kDirPrefix = "treepo_learners_e2e_";

 protected:
  // `treepo train` with tiny settings, 3 steps; returns its exit code (log in <out>.log).
  int Train(const fs::path& out, const std::string& extra) {
    return Shell(
        binary_ + " train --set model.base=" + (root_ / "base").string() + " --set out_dir=" +
            out.string() + " --set steps=3 --set rollout.queries_per_step=4 --set rollout.width=2" +
            " --set rollout.segment_tokens=8 --set rollout.max_depth=2" +
            " --set rollout.branch=2 --set task.train_problems=50" +
            " --set learner.lr=1e-3 --set output.checkpoint_every=0" +
            " --set output.progress=false --set cluster.worker_pages=256" +
            " --set cluster.learners=1" + " --set eval.before=false --set eval.problems=4" +
            " --set eval.max_new_tokens=32 " + extra,
        out.string() + ".log");
  }

  // Versions advance one per step, the workers follow, each step's trees come from its
  // version; the metrics lines carry the learner's figures.
  static void ExpectThreeSyncSteps(const fs::path& out) {
    const nlohmann::json summary = nlohmann::json::parse(ReadAll(out / "summary.json"));
    EXPECT_EQ(summary["final_version"].get<uint64_t>(), 3u);
    ASSERT_EQ(summary["worker_versions"].size(), 2u);
    for (const auto& [name, v] : summary["worker_versions"].items()) {
      EXPECT_EQ(v.get<uint64_t>(), 3u) << name;
    }
    const std::vector<nlohmann::json> lines = StepLines(out / "metrics.jsonl");
    ASSERT_EQ(lines.size(), 3u);
    for (size_t i = 0; i < lines.size(); ++i) {
      EXPECT_EQ(lines[i]["weight_version"].get<uint64_t>(), i + 1);
      EXPECT_EQ(lines[i]["rollout_version_min"].get<uint64_t>(), i);
      EXPECT_EQ(lines[i]["rollout_version_max"].get<uint64_t>(), i);
      for (const char* key : {"loss", "clip_fraction", "ratio_mean", "grad_norm", "train_tokens"}) {
        EXPECT_TRUE(lines[i].contains(key)) << key;
      }
      // Sync mode: logp_old is the sampling weights' own, so the ratio is 1.
      EXPECT_NEAR(lines[i]["ratio_mean"].get<double>(), 1.0, 1e-3);
    }
    for (int step = 0; step < 3; ++step) {
      const std::string name = treepo::testing::StepTreesPath(out.string(), step);
      auto trees = treepo::ReadTreeFile(name);
      ASSERT_TRUE(trees.ok()) << trees.status().ToString();
      for (const treepo::TreeRecord& t : *trees) {
        for (const treepo::TreeNodeRecord& n : t.nodes) {
          EXPECT_EQ(n.weight_version, static_cast<uint64_t>(step)) << name;
        }
      }
    }
    EXPECT_TRUE(fs::exists(out / "checkpoints/step_000003/model.safetensors"));
    EXPECT_TRUE(fs::exists(out / "eval_final.json"));  // `treepo eval` reads the checkpoint
  }
};

TEST_F(LearnersE2eTest, TwoDataParallelLearnersShardTheTreesAndStayInStep) {
  const fs::path out = root_ / "dp";
  // The tiny base model's answers are all wrong (equal rewards, zero advantages): the entropy
  // bonus gives every step a gradient for the ranks to reduce.
  ASSERT_EQ(Train(out,
                  "--set cluster.learners=2 --set learner.check_weights=true"
                  " --set learner.entropy_coef=0.01"),
            0)
      << ReadAll(out.string() + ".log");
  ExpectThreeSyncSteps(out);
  for (const nlohmann::json& line : StepLines(out / "metrics.jsonl")) {
    EXPECT_GT(line["grad_norm"].get<double>(), 0.0);
    EXPECT_EQ(line["learner_ranks"].get<double>(), 2.0);
    // Both shards trained: the sequences over ranks are the step's leaves with a response.
    EXPECT_GT(line["sequences"].get<double>(), 0.0);
    EXPECT_LE(line["sequences"].get<double>(), line["leaves"].get<double>());
  }
  const std::string rank1 = ReadAll(out / "logs/learner-1.log");
  EXPECT_NE(rank1.find("rank 1 of 2 joined"), std::string::npos) << rank1;
  EXPECT_FALSE(fs::exists(out / "logs/rendezvous"));  // removed at the end
}

TEST_F(LearnersE2eTest, DataParallelLearnersRefuseMiniBatchesByName) {
  const fs::path out = root_ / "dp_mini";
  EXPECT_NE(Train(out, "--set cluster.learners=2 --set learner.mini_batch_queries=1"), 0);
  const std::string log = ReadAll(out.string() + ".log") + ReadAll(out / "logs/learner-0.log");
  EXPECT_NE(log.find("mini_batch_queries"), std::string::npos) << log;
}

TEST_F(LearnersE2eTest, TorchLearnerServesTrainThroughTheClientLibrary) {
  if (std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3-torch or python3-numpy is not installed";
  }
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a thread-sanitized libtreepo_client cannot be loaded into an uninstrumented "
                  "Python; the release and address-sanitizer builds run this test";
#endif
  const fs::path out = root_ / "torch";
  std::string learner = "TREEPO_CLIENT_LIB=" + std::string(TREEPO_CLIENT_LIB_DEFAULT) +
                        " /usr/bin/python3 " + treepo::testing::SourceDir() +
                        "/examples/torch_learner.py";
#ifdef TREEPO_ASAN_RUNTIME
  // The sanitized client library needs the ASan runtime first in Python's process (whose own
  // allocations are not ours to leak-check).
  learner =
      "LD_PRELOAD=" + std::string(TREEPO_ASAN_RUNTIME) + " ASAN_OPTIONS=detect_leaks=0 " + learner;
#endif
  // With CURVE on: the learner gets its key files through TREEPO_SCHEDULER_KEY / TREEPO_KEY
  // and the scheduler admits it by its learner key.
  ASSERT_EQ(
      Train(out, "--set scheduler.curve=true --set 'cluster.learner_command=" + learner + "'"), 0)
      << ReadAll(out.string() + ".log") << ReadAll(out / "logs/learner.log");
  ExpectThreeSyncSteps(out);
  const std::string log = ReadAll(out / "logs/learner.log");
  EXPECT_NE(log.find("torch learner rank 0/1"), std::string::npos) << log;
  EXPECT_NE(log.find("step 2 -> version 3"), std::string::npos) << log;
}

TEST_F(LearnersE2eTest, TorchLearnerRanksReduceWithTorchDistributedAndStayIdentical) {
  if (std::system("/usr/bin/python3 -c 'import torch.distributed as d, numpy; "
                  "assert d.is_gloo_available()' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3-torch with Gloo or python3-numpy is not installed";
  }
#if defined(__SANITIZE_THREAD__) || defined(TREEPO_ASAN_RUNTIME)
  GTEST_SKIP() << "the single-rank torch test covers the client library in sanitizer builds";
#endif
  const fs::path out = root_ / "torch_ranks";
  const std::string learner = "TREEPO_CLIENT_LIB=" + std::string(TREEPO_CLIENT_LIB_DEFAULT) +
                              " /usr/bin/python3 " + treepo::testing::SourceDir() +
                              "/examples/torch_learner.py";
  ASSERT_EQ(Train(out, "--set cluster.learners=2 --set 'cluster.learner_command=" + learner + "'"),
            0)
      << ReadAll(out.string() + ".log") << ReadAll(out / "logs/learner-0.log")
      << ReadAll(out / "logs/learner-1.log");
  ExpectThreeSyncSteps(out);
  std::string crc[2];
  for (int rank = 0; rank < 2; ++rank) {
    const std::string log = ReadAll(out / ("logs/learner-" + std::to_string(rank) + ".log"));
    const std::string tag = "rank " + std::to_string(rank) + "/2 final weights crc32 ";
    const size_t at = log.find(tag);
    ASSERT_NE(at, std::string::npos) << log;
    crc[rank] = log.substr(at + tag.size(), 8);
  }
  EXPECT_EQ(crc[0], crc[1]);
  // Both ranks trained: the step's sequences are the two shards together.
  for (const nlohmann::json& line : StepLines(out / "metrics.jsonl")) {
    EXPECT_EQ(line["sequences"].get<double>(), 8.0) << line.dump();
  }
}

}  // namespace

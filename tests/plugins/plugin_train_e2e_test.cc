// `treepo train` with the example plug-ins (tests/plugins/example_*.c): the scheduler scores
// with the plug-in reward "boxed_exact" and the learner child computes advantages with the
// plug-in estimator "centered_return" or trains with the plug-in learner "reinforce_sgd"; a
// missing or incompatible plug-in or an unknown name stops the start with a message naming it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/testing/paths.h"
#include "tests/e2e_chaos/e2e_util.h"
#include "tests/e2e_train/tiny_train.h"

namespace {

namespace fs = std::filesystem;

using treepo::testing::Shell;

std::string ReadAll(const fs::path& p) { return treepo::testing::ReadAll(p.string()); }

class PluginTrainE2eTest : public treepo::testing::TinyBaseSuite<PluginTrainE2eTest> {
 public:
  static constexpr const char* kDirPrefix = "treepo_plugin_e2e_";

 protected:
  int Train(const fs::path& out, const std::string& extra) {
    const std::string cmd =
        binary_ + " train --set model.base=" + (root_ / "base").string() +
        " --set out_dir=" + out.string() +
        " --set rollout.queries_per_step=2 --set rollout.width=2 --set rollout.segment_tokens=8" +
        " --set rollout.max_depth=2 --set rollout.branch=2 --set task.train_problems=50" +
        " --set learner.lr=1e-3 --set output.checkpoint_every=0 --set output.progress=false" +
        " --set cluster.learners=1 --set cluster.worker_pages=256 --set eval.before=false" +
        " --set eval.problems=4" + " --set eval.max_new_tokens=16 " + extra;
    return Shell(cmd, out.string() + ".log");
  }
};

TEST_F(PluginTrainE2eTest, TrainsWithPluginRewardAndEstimator) {
  const fs::path out = root_ / "run";
  ASSERT_EQ(Train(out, std::string("--set steps=2 --set plugins=") + EXAMPLE_REWARD_SO + "," +
                           EXAMPLE_ESTIMATOR_SO +
                           " --set rollout.reward=boxed_exact"
                           " --set learner.estimator=centered_return"),
            0)
      << ReadAll(out.string() + ".log");
  const nlohmann::json summary = nlohmann::json::parse(ReadAll(out / "summary.json"));
  EXPECT_EQ(summary["final_version"].get<uint64_t>(), 2u);
  // Both processes loaded the list; each extension was registered where it is used.
  const std::string train_log = ReadAll(out.string() + ".log");
  EXPECT_NE(train_log.find("registered reward 'boxed_exact'"), std::string::npos) << train_log;
  const std::string learner_log = ReadAll(out / "logs" / "learner.log");
  EXPECT_NE(learner_log.find("registered advantage estimator 'centered_return'"), std::string::npos)
      << learner_log;
  // Every leaf was scored by boxed_exact: rewards in {-1, 0, 1}.
  int leaves = 0;
  for (const auto& entry : fs::directory_iterator(out / "trees")) {
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) {
      const nlohmann::json tree = nlohmann::json::parse(line);
      for (const auto& leaf : tree["leaves"]) {
        const double r = leaf["reward"].get<double>();
        EXPECT_TRUE(r == -1.0 || r == 0.0 || r == 1.0) << r;
        ++leaves;
      }
    }
  }
  EXPECT_EQ(leaves, 2 * 2 * 2);  // steps x queries x width
}

// The learner child trains with the plug-in learner "reinforce_sgd": the host publishes every
// step's weights, every worker ends on the newest version, and the end checkpoint holds the
// plug-in's state.
TEST_F(PluginTrainE2eTest, TrainsWithPluginLearner) {
  const fs::path out = root_ / "learner";
  ASSERT_EQ(Train(out, std::string("--set steps=3 --set plugins=") + EXAMPLE_LEARNER_SO + "," +
                           EXAMPLE_REWARD_SO +
                           " --set rollout.reward=short_response"
                           " --set learner.algorithm=reinforce_sgd"
                           " --set learner.algorithm_options=lr=0.05"),
            0)
      << ReadAll(out.string() + ".log");
  const nlohmann::json summary = nlohmann::json::parse(ReadAll(out / "summary.json"));
  EXPECT_EQ(summary["final_version"].get<uint64_t>(), 3u);
  ASSERT_FALSE(summary["worker_versions"].empty());
  for (const auto& [name, v] : summary["worker_versions"].items()) {
    EXPECT_EQ(v.get<uint64_t>(), 3u) << name;
  }
  const std::vector<nlohmann::json> lines = treepo::testing::StepLines(out / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["weight_version"].get<uint64_t>(), i + 1);
    EXPECT_EQ(lines[i]["rollout_version_max"].get<uint64_t>(), i);
    // The leaves' rewards differ (a length penalty), so the plug-in's gradient is not zero.
    EXPECT_GT(lines[i]["grad_norm"].get<double>(), 0.0) << lines[i].dump();
    EXPECT_EQ(lines[i]["lr"].get<double>(), 0.05);
  }
  const std::string learner_log = ReadAll(out / "logs" / "learner.log");
  EXPECT_NE(learner_log.find("registered learner algorithm 'reinforce_sgd'"), std::string::npos)
      << learner_log;
  EXPECT_NE(learner_log.find("reinforce_sgd learner algorithm"), std::string::npos) << learner_log;
  const fs::path ckpt = out / "checkpoints" / "step_000003";
  const nlohmann::json state = nlohmann::json::parse(ReadAll(ckpt / "state.json"));
  EXPECT_EQ(state["algorithm"], "reinforce_sgd");
  EXPECT_EQ(ReadAll(ckpt / "reinforce_sgd_state.txt"), "steps 3\n");
  // The weights it trained are the ones checkpointed: they moved away from the base model.
  EXPECT_NE(ReadAll(ckpt / "model.safetensors"), ReadAll(root_ / "base" / "model.safetensors"));

  // A resume runs the algorithm that wrote the checkpoint, with its state loaded back.
  const std::string plugins = std::string(" --set plugins=") + EXAMPLE_LEARNER_SO + "," +
                              EXAMPLE_REWARD_SO + " --set rollout.reward=short_response";
  const fs::path other = root_ / "resume_other";
  EXPECT_EQ(Train(other, "--set steps=4 --set resume=" + ckpt.string() + plugins), 1);
  const std::string olog = ReadAll(other.string() + ".log");
  EXPECT_NE(olog.find("was written by learner algorithm 'reinforce_sgd', this learner runs "
                      "'ppo_clip'"),
            std::string::npos)
      << olog;
  const fs::path resumed = root_ / "resume_same";
  ASSERT_EQ(Train(resumed, "--set steps=4 --set resume=" + ckpt.string() + plugins +
                               " --set learner.algorithm=reinforce_sgd"),
            0)
      << ReadAll(resumed.string() + ".log");
  const nlohmann::json s2 = nlohmann::json::parse(ReadAll(resumed / "summary.json"));
  EXPECT_EQ(s2["final_version"].get<uint64_t>(), 4u);
  EXPECT_EQ(ReadAll(resumed / "checkpoints" / "step_000004" / "reinforce_sgd_state.txt"),
            "steps 4\n");
}

// Two data-parallel learner ranks, each with its own instance of the plug-in: the host's
// backward sums the gradient over them, so their weights stay identical (checked by a hash
// every step) and the run goes on as with one.
TEST_F(PluginTrainE2eTest, TrainsWithPluginLearnerOnTwoRanks) {
  const fs::path out = root_ / "learner_dp";
  ASSERT_EQ(Train(out, std::string("--set steps=2 --set plugins=") + EXAMPLE_LEARNER_SO + "," +
                           EXAMPLE_REWARD_SO +
                           " --set rollout.reward=short_response --set rollout.queries_per_step=4"
                           " --set learner.algorithm=reinforce_sgd --set cluster.learners=2"
                           " --set learner.check_weights=true"),
            0)
      << ReadAll(out.string() + ".log");
  const nlohmann::json summary = nlohmann::json::parse(ReadAll(out / "summary.json"));
  EXPECT_EQ(summary["final_version"].get<uint64_t>(), 2u);
  for (const auto& [name, v] : summary["worker_versions"].items()) {
    EXPECT_EQ(v.get<uint64_t>(), 2u) << name;
  }
  const std::vector<nlohmann::json> lines = treepo::testing::StepLines(out / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  for (const nlohmann::json& l : lines) {
    EXPECT_EQ(l["learner_ranks"].get<double>(), 2.0);
    EXPECT_GT(l["grad_norm"].get<double>(), 0.0);
  }
  for (const char* rank : {"learner-0.log", "learner-1.log"}) {
    EXPECT_NE(ReadAll(out / "logs" / rank).find("reinforce_sgd learner algorithm"),
              std::string::npos)
        << rank;
  }
}

// An unknown algorithm name stops the learner at start with the registered names; a learner
// plug-in built for ABI version 1 is refused with the version message.
TEST_F(PluginTrainE2eTest, UnknownAlgorithmOrOldAbiStopsTheStart) {
  const fs::path unknown = root_ / "unknown_algorithm";
  EXPECT_EQ(Train(unknown, std::string("--set steps=1 --set plugins=") + EXAMPLE_LEARNER_SO +
                               " --set learner.algorithm=reinforce_sgdd"),
            1);
  const std::string log =
      ReadAll(unknown.string() + ".log") + ReadAll(unknown / "logs" / "learner.log");
  EXPECT_NE(log.find("unknown learner algorithm 'reinforce_sgdd' (known: ppo_clip, reinforce_sgd)"),
            std::string::npos)
      << log;

  const fs::path old = root_ / "abi1";
  EXPECT_EQ(Train(old, std::string("--set steps=1 --set plugins=") + ABI1_SO +
                           " --set learner.algorithm=reinforce_sgd"),
            1);
  const std::string olog = ReadAll(old.string() + ".log");
  EXPECT_NE(olog.find("built for plug-in ABI version 1, this treepo has version 2"),
            std::string::npos)
      << olog;
}

TEST_F(PluginTrainE2eTest, MissingOrIncompatiblePluginStopsTheStart) {
  const fs::path missing = root_ / "missing";
  EXPECT_EQ(Train(missing, "--set steps=1 --set plugins=" + (root_ / "libnope.so").string()), 1);
  const std::string log = ReadAll(missing.string() + ".log");
  EXPECT_NE(log.find("libnope.so: no such file"), std::string::npos) << log;

  const fs::path bad = root_ / "bad_abi";
  EXPECT_EQ(Train(bad, std::string("--set steps=1 --set plugins=") + BAD_ABI_SO), 1);
  EXPECT_NE(ReadAll(bad.string() + ".log").find("ABI version"), std::string::npos);

  // A name no plug-in registered is refused with the known names.
  const fs::path unknown = root_ / "unknown";
  EXPECT_EQ(Train(unknown, std::string("--set steps=1 --set plugins=") + EXAMPLE_REWARD_SO +
                               " --set rollout.reward=boxed_exactly"),
            1);
  const std::string ulog = ReadAll(unknown.string() + ".log");
  EXPECT_NE(ulog.find("boxed_exact"), std::string::npos) << ulog;
}

}  // namespace

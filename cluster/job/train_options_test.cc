// configs/default.toml against the defaults of `treepo train`'s option structs: every key the
// file sets has the struct's default value, and every key `train` reads is in the file.
#include "cluster/job/train_options.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "common/config.h"
#include "common/testing/paths.h"

namespace treepo::cluster {
namespace {

Result<Config> DefaultToml() {
  return Config::LoadTomlFile(testing::SourceDir() + "/configs/default.toml");
}

// Loads `config` as `train` does (the `plugins` key is read by the plug-in loader first).
Status Load(const Config& config, TrainJobOptions* o) {
  std::string plugins;
  TREEPO_RETURN_IF_ERROR(config.Get("plugins", &plugins));
  return LoadTrainJobOptions(config, o);
}

// The keys `train` sets itself, or that have no fixed default (learner.check_weights: on in
// debug builds): not in the file.
bool Undocumented(const std::string& key) {
  if (key == "learner.check_weights") return true;
  const std::vector<std::string>& d = DerivedLearnerKeys();
  return key.rfind("learner.", 0) == 0 && std::find(d.begin(), d.end(), key.substr(8)) != d.end();
}

TEST(TrainOptionsTest, DefaultTomlSaysWhatTheStructsDefaultTo) {
  Result<Config> c = DefaultToml();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  TrainJobOptions loaded;
  const Status st = Load(*c, &loaded);
  ASSERT_TRUE(st.ok()) << st.ToString();
  const std::map<std::string, std::string> from_file = TrainSettings(loaded);
  const std::map<std::string, std::string> defaults = TrainSettings(TrainJobOptions());
  ASSERT_EQ(from_file.size(), defaults.size());
  for (const auto& [key, value] : defaults) {
    EXPECT_EQ(from_file.at(key), value)
        << key << ": configs/default.toml says " << from_file.at(key) << ", the struct " << value;
  }
}

TEST(TrainOptionsTest, DefaultTomlDocumentsEveryKey) {
  Result<Config> c = DefaultToml();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  int documented = 0;
  for (const auto& [key, value] : TrainSettings(TrainJobOptions())) {
    if (Undocumented(key)) continue;
    EXPECT_TRUE(c->Has(key)) << key << " is not in configs/default.toml";
    ++documented;
  }
  EXPECT_GT(documented, 90);
}

TEST(TrainOptionsTest, AChangedValueShowsInTheSettings) {
  // The comparison above can fail: a value that differs from the default is seen.
  Result<Config> c = DefaultToml();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->Set("rollout.top_p=0.5").ok());
  ASSERT_TRUE(c->Set("learner.eps_high=0.3").ok());
  TrainJobOptions loaded;
  ASSERT_TRUE(Load(*c, &loaded).ok());
  const std::map<std::string, std::string> a = TrainSettings(loaded);
  const std::map<std::string, std::string> b = TrainSettings(TrainJobOptions());
  EXPECT_NE(a.at("rollout.top_p"), b.at("rollout.top_p"));
  EXPECT_NE(a.at("learner.eps_high"), b.at("learner.eps_high"));
  EXPECT_EQ(a.at("steps"), b.at("steps"));
}

TEST(TrainOptionsTest, UnknownAndDerivedKeysAreRefusedByName) {
  Config c;
  ASSERT_TRUE(c.Set("rollout.widht=4").ok());
  TrainJobOptions o;
  Status st = Load(c, &o);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("rollout.widht"), std::string::npos) << st.ToString();

  Config d;
  ASSERT_TRUE(d.Set("learner.checkpoint_dir=/tmp/x").ok());
  st = Load(d, &o);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("learner.checkpoint_dir"), std::string::npos) << st.ToString();

  Config w;
  ASSERT_TRUE(w.Set("cluster.workers=0").ok());
  st = Load(w, &o);
  EXPECT_NE(st.message().find("cluster.workers"), std::string::npos) << st.ToString();
}

TEST(TrainOptionsTest, DerivedFieldsFollowTheLauncherKeys) {
  TrainJobOptions o;
  o.train.workers = 3;
  o.train.learners = 2;
  o.train.learner_threads = 5;
  o.train.out_dir = "runs/x";
  o.rl.sync_mode = "async";
  o.rl.max_staleness = 2;
  DeriveTrainJobOptions(&o);
  EXPECT_EQ(o.rl.workers, 3);
  EXPECT_EQ(o.rl.learners, 2);
  EXPECT_EQ(o.learner.world_size, 2);
  EXPECT_EQ(o.learner.blas_threads, 5);
  EXPECT_EQ(o.learner.trainer.max_staleness, 2);
  EXPECT_EQ(o.learner.checkpoint_dir, "runs/x/checkpoints");
  EXPECT_FALSE(o.learner.checkpoint_on_signal);
}

}  // namespace
}  // namespace treepo::cluster

// configs/default.toml against the defaults of `treepo train`'s option structs: every key the
// file sets has the struct's default value, and every key `train` reads is in the file.
#include "cluster/job/train_options.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "cluster/job/train_job.h"
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

TEST(TrainOptionsTest, SchedulerBindAdvertiseAndKeyDirAreKeys) {
  Config c;
  ASSERT_TRUE(c.Set("scheduler.bind=tcp://0.0.0.0:5555").ok());
  ASSERT_TRUE(c.Set("scheduler.advertise=tcp://head:*").ok());
  ASSERT_TRUE(c.Set("scheduler.key_dir=keys").ok());
  TrainJobOptions o;
  ASSERT_TRUE(Load(c, &o).ok());
  EXPECT_EQ(o.rl.rollout.service.bind_endpoint, "tcp://0.0.0.0:5555");
  EXPECT_EQ(o.train.advertise, "tcp://head:*");
  EXPECT_EQ(o.train.key_dir, "keys");
  // The processes are given the advertised endpoint, its "*" port the bound one.
  EXPECT_EQ(AdvertisedEndpoint("tcp://head:*", "tcp://0.0.0.0:41234"), "tcp://head:41234");
  EXPECT_EQ(AdvertisedEndpoint("tcp://head:5555", "tcp://0.0.0.0:5555"), "tcp://head:5555");
  EXPECT_EQ(AdvertisedEndpoint("", "tcp://127.0.0.1:41234"), "tcp://127.0.0.1:41234");
}

TEST(TrainOptionsTest, ProcessesArePlacedHostByHost) {
  TrainJobOptions o;
  o.train.worker_threads = 1;
  o.train.worker_pages = 2048;
  ProcessContext c;
  c.executable = "/bin/treepo";
  c.endpoint = "tcp://h:1";
  c.start_model = "base";
  HostPlacement a, b;
  a.host = "a";
  a.workers = 1;
  a.learners = 1;
  b.host = "b";
  b.address = "10.0.0.2";
  b.workers = 2;
  b.worker_pages = 512;
  const std::vector<ProcessSpec> ps = PlanProcesses(o, o.learner, c, {a, b}, "run/logs");
  ASSERT_EQ(ps.size(), 4u);
  EXPECT_EQ(ps[0].name, "worker-1");
  EXPECT_EQ(ps[1].name, "learner");
  EXPECT_EQ(ps[2].name, "worker-2");
  EXPECT_EQ(ps[3].name, "worker-3");
  EXPECT_EQ(ps[3].host, "b");
  EXPECT_EQ(ps[3].address, "10.0.0.2");
  EXPECT_EQ(ps[3].log_path, "run/logs/worker-3.log");
  auto flag = [](const std::vector<std::string>& argv, const std::string& f) {
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == f) return argv[i + 1];
    }
    return std::string();
  };
  EXPECT_EQ(flag(ps[0].argv, "--pages"), "2048");
  EXPECT_EQ(flag(ps[2].argv, "--pages"), "512");  // the host's own value
  EXPECT_EQ(flag(ps[2].argv, "--scheduler"), "tcp://h:1");
  EXPECT_EQ(ps[1].argv[1], "learner");
}

}  // namespace
}  // namespace treepo::cluster

// The cluster file: configs/cluster.example.toml says what the ClusterSpec defaults are, every
// bad value is refused with its key named, and the train keys a file sets.
#include "cluster/launch/cluster_spec.h"

#include <gtest/gtest.h>

#include <string>

#include "common/config.h"
#include "common/testing/paths.h"

namespace treepo::cluster {
namespace {

std::string Example() { return testing::SourceDir() + "/configs/cluster.example.toml"; }

Result<ClusterSpec> FromText(const std::string& text) {
  TREEPO_ASSIGN_OR_RETURN(Config c, Config::FromTomlString(text, "test.toml"));
  return ClusterSpecFromConfig(c, "test.toml");
}

const char* kMinimal = R"(
[hosts.a]
workers = 1
learners = 1
)";

TEST(ClusterSpecTest, TheExampleSaysWhatTheStructDefaultsTo) {
  Result<ClusterSpec> ex = LoadClusterSpec(Example());
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  Result<ClusterSpec> d = FromText(kMinimal);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(ex->name, d->name);
  EXPECT_EQ(ex->launcher, d->launcher);
  EXPECT_EQ(ex->run_dir, d->run_dir);
  EXPECT_EQ(ex->binary, d->binary);
  EXPECT_EQ(ex->model, d->model);
  EXPECT_EQ(ex->prompts, d->prompts);
  EXPECT_EQ(ex->train_config, d->train_config);
  EXPECT_EQ(ex->steps, d->steps);
  EXPECT_EQ(ex->worker_threads, d->worker_threads);
  EXPECT_EQ(ex->worker_pages, d->worker_pages);
  EXPECT_EQ(ex->learner_threads, d->learner_threads);
  EXPECT_EQ(ex->head_address, d->head_address);
  EXPECT_EQ(ex->head_bind, d->head_bind);
  EXPECT_EQ(ex->head_port, d->head_port);
  EXPECT_EQ(ex->dashboard_port, d->dashboard_port);
  EXPECT_EQ(ex->dashboard_token, d->dashboard_token);
  EXPECT_EQ(ex->curve, d->curve);
  EXPECT_EQ(ex->keys_dir, d->keys_dir);
  EXPECT_EQ(ex->ssh.user, d->ssh.user);
  EXPECT_EQ(ex->ssh.port, d->ssh.port);
  EXPECT_EQ(ex->ssh.identity_file, d->ssh.identity_file);
  EXPECT_EQ(ex->ssh.options, d->ssh.options);
  EXPECT_EQ(ex->ssh.connect_timeout_s, d->ssh.connect_timeout_s);
  EXPECT_EQ(ex->slurm.partition, d->slurm.partition);
  EXPECT_EQ(ex->slurm.account, d->slurm.account);
  EXPECT_EQ(ex->slurm.time, d->slurm.time);
  EXPECT_EQ(ex->slurm.cpus_per_node, d->slurm.cpus_per_node);
  EXPECT_EQ(ex->slurm.extra, d->slurm.extra);
  const KubernetesSpec& k = ex->kubernetes;
  const KubernetesSpec& kd = d->kubernetes;
  EXPECT_EQ(k.namespace_name, kd.namespace_name);
  EXPECT_EQ(k.image, kd.image);
  EXPECT_EQ(k.image_pull_policy, kd.image_pull_policy);
  EXPECT_EQ(k.data_claim, kd.data_claim);
  EXPECT_EQ(k.data_mount, kd.data_mount);
  EXPECT_EQ(k.worker_cpu, kd.worker_cpu);
  EXPECT_EQ(k.worker_memory, kd.worker_memory);
  EXPECT_EQ(k.learner_cpu, kd.learner_cpu);
  EXPECT_EQ(k.learner_memory, kd.learner_memory);
  ASSERT_EQ(ex->hosts.size(), 1u);
  const HostSpec h;
  EXPECT_EQ(ex->hosts[0].worker_threads, h.worker_threads);
  EXPECT_EQ(ex->hosts[0].worker_pages, h.worker_pages);
}

TEST(ClusterSpecTest, HostsAreReadInNameOrderWithTheirDefaults) {
  Result<ClusterSpec> s = FromText(R"(
launcher = "ssh"
[head]
address = "10.0.0.1"
port = 5555
[hosts.b]
address = "10.0.0.3"
workers = 3
worker_pages = 512
[hosts.a]
workers = 1
learners = 2
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->hosts.size(), 2u);
  EXPECT_EQ(s->hosts[0].name, "a");
  EXPECT_EQ(s->hosts[0].address, "a");  // the name when no address
  EXPECT_EQ(s->hosts[1].address, "10.0.0.3");
  EXPECT_EQ(s->hosts[1].worker_pages, 512);
  EXPECT_EQ(s->TotalWorkers(), 4);
  EXPECT_EQ(s->TotalLearners(), 2);
  EXPECT_EQ(s->SchedulerEndpoint(), "tcp://10.0.0.1:5555");
  const std::map<std::string, std::string> kv = TrainKeysFromCluster(*s);
  EXPECT_EQ(kv.at("cluster.workers"), "4");
  EXPECT_EQ(kv.at("cluster.learners"), "2");
  EXPECT_EQ(kv.at("scheduler.bind"), "tcp://10.0.0.1:5555");
  EXPECT_EQ(kv.at("scheduler.advertise"), "tcp://10.0.0.1:5555");
  EXPECT_EQ(kv.at("scheduler.key_dir"), "runs/cluster/keys");
  EXPECT_EQ(kv.at("out_dir"), "runs/cluster");
  EXPECT_EQ(kv.count("steps"), 0u);  // 0: the train config's
}

// Each bad file is refused, and the message names the key.
TEST(ClusterSpecTest, BadFilesAreRefusedNamingTheKey) {
  const std::string hosts = "\n[hosts.a]\nworkers = 1\nlearners = 1\n";
  const std::pair<std::string, std::string> cases[] = {
      {"launcher = \"ray\"" + hosts, "launcher"},
      {"lanucher = \"ssh\"" + hosts, "lanucher"},
      {"name = \"Big_Job\"" + hosts, "name"},
      {"launcher = \"ssh\"" + hosts, "head.port"},
      {"[head]\nport = 70000" + hosts, "head.port"},
      {"[head]\nport = 80\ndashboard_port = 80" + hosts, "head.dashboard_port"},
      {"worker_threads = 0" + hosts, "worker_threads"},
      {"[ssh]\nport = 0" + hosts, "ssh.port"},
      {"[hosts.a]\nworkers = -1\nlearners = 1\n", "hosts.a.workers"},
      {"[hosts.a]\nworkers = 1\nlearners = 1\nwrokers = 2\n", "hosts.a.wrokers"},
      {"[hosts.a]\nlearners = 1\n", "hosts"},
      {"[hosts.a]\nworkers = 1\n", "hosts"},
      {"[hosts.a]\nworkers = 1\nlearners = 1\n[hosts.b]\nlearners = 1\n", "hosts.b.learners"},
      {"hosts = 3\n", "hosts"},
      {"[kubernetes]\nnamespace = \"Not_DNS\"" + hosts, "kubernetes.namespace"},
      {"steps = \"many\"" + hosts, "steps"},
  };
  for (const auto& [text, key] : cases) {
    Result<ClusterSpec> s = FromText(text);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_NE(s.status().message().find(key), std::string::npos)
        << "for:\n"
        << text << "\ngot: " << s.status().ToString();
    EXPECT_NE(s.status().message().find("test.toml"), std::string::npos) << s.status().ToString();
  }
}

}  // namespace
}  // namespace treepo::cluster

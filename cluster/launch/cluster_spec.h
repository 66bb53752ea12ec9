// The cluster file (configs/cluster.example.toml documents every key): where the head runs
// and on which ports, the hosts and how many workers and learners each runs, their threads and
// KV pages, the model and data paths, the CurveZMQ key directory, and the launcher that starts
// the processes (local, ssh, slurm, kubernetes). Read through the repository's TOML reader
// (common/config.h): an unknown key is an error that names it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace treepo::cluster {

// One [hosts.NAME] table.
struct HostSpec {
  std::string name;        // the table's name (process names and logs use it)
  std::string address;     // address: where the launcher reaches it (default: the name)
  int workers = 0;         // workers: inference worker processes on this host
  int learners = 0;        // learners: learner processes (data-parallel ranks) on this host
  int worker_threads = 0;  // worker_threads: BLAS threads per worker (0: the file's)
  int worker_pages = 0;    // worker_pages: KV pages per worker (0: the file's)
};

struct SshSpec {
  std::string user;           // ssh.user ("" = the current user)
  int port = 22;              // ssh.port
  std::string identity_file;  // ssh.identity_file ("" = ssh's default keys)
  // ssh.options: extra `-o` options, comma-separated ("StrictHostKeyChecking=accept-new").
  std::vector<std::string> options;
  int connect_timeout_s = 10;  // ssh.connect_timeout_s
};

struct SlurmSpec {
  std::string partition;          // slurm.partition ("" = the default)
  std::string account;            // slurm.account
  std::string time = "01:00:00";  // slurm.time: the job's time limit
  int cpus_per_node = 0;          // slurm.cpus_per_node (0: not asked for)
  std::string extra;              // slurm.extra: further #SBATCH lines, comma-separated
};

struct KubernetesSpec {
  std::string namespace_name = "default";          // kubernetes.namespace
  std::string image = "treepo:latest";             // kubernetes.image: holds the treepo binary
  std::string image_pull_policy = "IfNotPresent";  // kubernetes.image_pull_policy
  std::string data_claim = "treepo-data";  // kubernetes.data_claim: PVC mounted at data_mount
  std::string data_mount = "/data";        // kubernetes.data_mount (model, prompts, run_dir)
  std::string worker_cpu = "1";            // kubernetes.worker_cpu: CPU request per worker
  std::string worker_memory = "2Gi";       // kubernetes.worker_memory
  std::string learner_cpu = "2";           // kubernetes.learner_cpu
  std::string learner_memory = "4Gi";      // kubernetes.learner_memory
};

struct ClusterSpec {
  std::string path;                      // the file read (for messages)
  std::string name = "treepo";           // name: the job's name (Slurm job, Kubernetes objects)
  std::string launcher = "local";        // launcher: local | ssh | slurm | kubernetes
  std::string run_dir = "runs/cluster";  // run_dir: the run's out_dir, same path on every host
  std::string binary;                    // binary: treepo on every host ("" = this executable)
  std::string model = "runs/base";       // model: base model dir, same path on every host
  std::string prompts;                   // prompts: JSON-lines prompt file ("" = built-in task)
  std::string train_config;              // train_config: a `treepo train` TOML for the RL settings
  int steps = 0;                         // steps: RL steps (0: the train config's)
  int worker_threads = 1;                // worker_threads: default of every host
  int worker_pages = 2048;               // worker_pages: default of every host
  int learner_threads = 2;               // learner_threads

  std::string head_address = "127.0.0.1";  // head.address: how the others reach the head
  std::string head_bind;                   // head.bind: the interface it binds ("" = head.address)
  int head_port = 0;                       // head.port: scheduler port (0 = a free one; local only)
  int dashboard_port = 0;                  // head.dashboard_port: HTTP (/healthz, /api/cluster)
  std::string dashboard_token;             // head.dashboard_token: required off loopback

  bool curve = true;     // keys.curve: CurveZMQ on every connection
  std::string keys_dir;  // keys.dir: scheduler/worker/learner key pairs
                         // ("" = run_dir/keys, made by `cluster up` if missing)

  std::vector<HostSpec> hosts;  // [hosts.NAME], in name order
  SshSpec ssh;
  SlurmSpec slurm;
  KubernetesSpec kubernetes;

  int TotalWorkers() const;
  int TotalLearners() const;
  // tcp://ADDRESS:PORT that processes connect to ("*" port when head.port is 0).
  std::string SchedulerEndpoint() const;
  std::string BindEndpoint() const;
  std::string KeysDir() const;  // keys.dir or run_dir/keys
  Status Validate() const;
};

// Reads the cluster file at `path`; every error names the file and the key.
Result<ClusterSpec> LoadClusterSpec(const std::string& path);
// The same from a Config (its keys are marked read; unknown keys are an error).
Result<ClusterSpec> ClusterSpecFromConfig(const Config& config, const std::string& origin);

// The `treepo train` keys that the cluster file sets (out_dir, model.base, task.prompts,
// cluster.*, scheduler.bind, scheduler.advertise, scheduler.key_dir, dashboard.*, steps).
std::map<std::string, std::string> TrainKeysFromCluster(const ClusterSpec& spec);

}  // namespace treepo::cluster

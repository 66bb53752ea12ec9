// The cluster commands over a cluster file: `treepo train --cluster FILE` (the head: the RL
// loop with its processes started through the file's launcher), `treepo cluster up | status |
// scale | down | join`, and the Slurm roles inside an allocation.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "cluster/job/train_job.h"
#include "cluster/launch/cluster_spec.h"
#include "common/config.h"
#include "common/status.h"

namespace treepo::cluster {

// The cluster file at `path` with `sets` ("key=value") applied over it.
Result<ClusterSpec> LoadClusterFile(const std::string& path, const std::vector<std::string>& sets);

// The `treepo train` config of a cluster run: `train_config` (else the file's train_config;
// "" = none), the file's keys over it (TrainKeysFromCluster), then `sets`.
Result<Config> ClusterTrainConfig(const ClusterSpec& spec, const std::string& train_config,
                                  const std::vector<std::string>& sets);

// The config of `train --resume RUN_DIR --cluster FILE`: the run's own keys (RUN_DIR's
// run_config.json, with `resume` = RUN_DIR), then `train_config` ("" = none), the file's keys
// and `sets` over them. RUN_DIR must be the file's run_dir.
Result<Config> ClusterResumeConfig(const ClusterSpec& spec, const std::string& run_dir,
                                   const std::string& train_config,
                                   const std::vector<std::string>& sets);

// The file's hosts as a run's placement.
std::vector<HostPlacement> ClusterPlacement(const ClusterSpec& spec);

// Inside a Slurm allocation: the file's hosts mapped in order onto SLURM_JOB_NODELIST's nodes
// (their addresses become the node names, head.address the first node's), and this task's
// index (SLURM_PROCID). kFailedPrecondition outside an allocation.
struct SlurmRole {
  int procid = 0;
  std::vector<std::string> nodes;
};
Result<SlurmRole> ReadSlurmRole();
Status ApplySlurmNodes(const SlurmRole& role, ClusterSpec* spec);

// `train --cluster`: the head. Makes the key directory's missing keys (keys.curve), runs every
// train stage with the processes of `hosts` (empty: all of the file's) started through the
// file's launcher and recorded in run_dir/procs, and stops the ones still running at the end.
// Resuming (`resume` set, ClusterResumeConfig), it first takes over what the dead head left:
// workers still running on their hosts (ssh) rejoin and are watched instead of started again;
// any other process still running (the learner) is stopped and started anew.
Status RunClusterTrain(const ClusterSpec& spec, const Config& train_config,
                       const std::vector<std::string>& hosts, const std::atomic<bool>* stop);

// The processes of the file's host `host` (a Slurm task that is not the head), as children of
// this process until they exit or *stop.
Status RunClusterHost(const ClusterSpec& spec, const Config& train_config, const std::string& host,
                      const std::atomic<bool>* stop);

// One worker or learner (a Kubernetes Pod): replaces this process with it.
Status ExecClusterProcess(const ClusterSpec& spec, const Config& train_config,
                          const std::string& role, const std::string& name);

struct ClusterUpOptions {
  std::string file;                     // the cluster file (absolute)
  std::vector<std::string> sets;        // over the cluster file
  std::string train_config;             // over the file's train_config
  std::vector<std::string> train_sets;  // over the train config
  int wait_ms = 120000;                 // for the head to answer /healthz
  // local, ssh: resume the run in run_dir whose head died (`train --resume RUN_DIR --cluster`:
  // the processes it left are taken back or replaced) instead of starting a new one.
  bool resume = false;
};
// local/ssh: starts the head (`treepo train --cluster FILE`, with `--resume RUN_DIR` when
// o.resume) detached on head.address and waits until it answers. slurm: inside an allocation takes
// this task's role (and runs until the run ends); outside, writes and submits the sbatch script.
Status ClusterUp(const ClusterSpec& spec, const ClusterUpOptions& o, const std::atomic<bool>* stop);

// The processes (name, role, host, pid, state, log) and the head's cluster table (workers,
// versions, KV use, rates) from its dashboard; fetches remote logs into run_dir/logs/hosts/.
Status ClusterStatus(const ClusterSpec& spec, std::string* out);

// `workers=N` (or +K / -K): starts workers (spread over the file's hosts that run workers) or
// stops the newest ones (SIGTERM: they drain and deregister).
Status ClusterScale(const ClusterSpec& spec, const std::string& request, std::string* out);

// Stops the head (SIGTERM), then every recorded process still running (SIGTERM, SIGKILL after
// `grace_ms`), fetches their logs, and forgets them. slurm: also cancels the job.
Status ClusterDown(const ClusterSpec& spec, int grace_ms, std::string* out);

}  // namespace treepo::cluster

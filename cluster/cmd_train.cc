// `treepo train [--config FILE] [--set key=value ...]`: TreePO RL end to end on one machine.
//
// With no arguments it runs the built-in default (configs/default.toml documents every key):
// makes the base model if missing (`treepo pretrain`'s job, into model.base), evaluates it on
// the held-out split, starts the scheduler and the RL loop in this process and the workers and
// the learner as child processes on loopback (this same binary), trains, evaluates the final
// checkpoint, and writes metrics.jsonl, checkpoints/, trees/, eval_*.json, summary.json and a
// report (report.md, curves.png) into out_dir. `resume = DIR` continues from a checkpoint;
// `--resume RUN_DIR` continues a run whose head died (docs/cluster-recovery.md).
// Logs and a status line per step go to stderr; the summary JSON to stdout. The stages live in
// the train job (cluster/job/train_job.h).

#include <atomic>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "cluster/command.h"
#include "cluster/job/train_job.h"
#include "cluster/launch/cluster_run.h"
#include "common/config.h"
#include "common/log.h"

namespace treepo::cluster {
namespace {

std::atomic<bool> g_train_stop{false};
void OnTrainSignal(int) { g_train_stop.store(true); }

struct TrainCmdOptions {
  std::string config_path;
  std::vector<std::string> sets;
  std::string cluster_file;               // --cluster: run over a cluster file
  std::vector<std::string> cluster_sets;  // --cluster-set: over the cluster file
  std::string resume_run;                 // --resume RUN_DIR
};

Status RunTrainCmd(const TrainCmdOptions& c) {
  if (!c.cluster_file.empty()) {
    TREEPO_ASSIGN_OR_RETURN(const ClusterSpec spec,
                            LoadClusterFile(c.cluster_file, c.cluster_sets));
    Config config;
    if (c.resume_run.empty()) {
      TREEPO_ASSIGN_OR_RETURN(config, ClusterTrainConfig(spec, c.config_path, c.sets));
    } else {
      TREEPO_ASSIGN_OR_RETURN(config,
                              ClusterResumeConfig(spec, c.resume_run, c.config_path, c.sets));
    }
    return RunClusterTrain(spec, config, {}, &g_train_stop);
  }
  if (!c.cluster_sets.empty()) return InvalidArgument("--cluster-set needs --cluster FILE");
  Config config;
  if (!c.resume_run.empty()) {
    // The stopped run's keys; --config and --set still override them.
    TREEPO_ASSIGN_OR_RETURN(config, LoadRunConfig(c.resume_run));
  }
  if (!c.config_path.empty()) {
    TREEPO_ASSIGN_OR_RETURN(Config file, Config::LoadTomlFile(c.config_path));
    for (const auto& [key, value] : file.values()) config.SetValue(key, value);
  }
  for (const std::string& s : c.sets) TREEPO_RETURN_IF_ERROR(config.Set(s));
  return RunTrainJob(config, &g_train_stop);
}

}  // namespace

void RegisterTrain(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<TrainCmdOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train", "TreePO RL end to end: base model, workers, learner, eval, report");
  cmd->add_option("--config", opts->config_path, "TOML config (configs/default.toml)");
  cmd->add_option("--set", opts->sets, "override a config key: key=value (repeatable)");
  cmd->add_option("--cluster", opts->cluster_file,
                  "run over the hosts of a cluster file (docs/cluster.md); its keys set out_dir, "
                  "model.base, cluster.*, scheduler.bind/advertise/key_dir; --config defaults to "
                  "its train_config");
  cmd->add_option("--cluster-set", opts->cluster_sets,
                  "override a key of the cluster file: key=value (repeatable)");
  cmd->add_option("--resume", opts->resume_run,
                  "continue the run in RUN_DIR (after its head died): its config, newest "
                  "complete checkpoint, metrics and dataset cursor, on its endpoint; with "
                  "--cluster, the file's run_dir, its workers still running taken back");
  cmd->callback([opts, exit_code] {
    InitLogging("train");
    std::signal(SIGINT, OnTrainSignal);
    std::signal(SIGTERM, OnTrainSignal);
    const Status st = RunTrainCmd(*opts);
    if (!st.ok()) {
      spdlog::error("train: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster

// `treepo cluster up|status|scale|down|join|render FILE`: a multi-host run described by a
// cluster file (configs/cluster.example.toml, docs/cluster.md). In these commands `--set`
// overrides a key of the cluster file; `--config` and `--train-set` give the train settings.
#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cluster/command.h"
#include "cluster/launch/cluster_run.h"
#include "cluster/launch/kubernetes.h"
#include "cluster/launch/slurm.h"
#include "common/file_io.h"
#include "common/log.h"

namespace treepo::cluster {
namespace {

std::atomic<bool> g_cluster_stop{false};
void OnClusterSignal(int) { g_cluster_stop.store(true); }

struct ClusterCmdOptions {
  std::string file;
  std::vector<std::string> sets;
  std::string train_config;
  std::vector<std::string> train_sets;
  std::string scale;       // scale: workers=N
  int grace_ms = 60000;    // down
  int wait_s = 120;        // up
  bool resume = false;     // up
  std::string role, name;  // join
  std::string what;        // render: k8s | slurm
};

std::string Absolute(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

Status RunClusterCmd(const std::string& sub, const ClusterCmdOptions& o) {
  TREEPO_ASSIGN_OR_RETURN(const ClusterSpec spec, LoadClusterFile(o.file, o.sets));
  ClusterUpOptions up;
  up.file = Absolute(o.file);
  up.sets = o.sets;
  up.train_config = o.train_config.empty() ? "" : Absolute(o.train_config);
  up.train_sets = o.train_sets;
  up.wait_ms = o.wait_s * 1000;
  up.resume = o.resume;
  std::string out;
  if (sub == "up") return ClusterUp(spec, up, &g_cluster_stop);
  if (sub == "status") {
    TREEPO_RETURN_IF_ERROR(ClusterStatus(spec, &out));
  } else if (sub == "scale") {
    TREEPO_RETURN_IF_ERROR(ClusterScale(spec, o.scale, &out));
  } else if (sub == "down") {
    TREEPO_RETURN_IF_ERROR(ClusterDown(spec, o.grace_ms, &out));
  } else if (sub == "join") {
    TREEPO_ASSIGN_OR_RETURN(Config train, ClusterTrainConfig(spec, o.train_config, o.train_sets));
    return ExecClusterProcess(spec, train, o.role, o.name);
  } else if (sub == "render") {
    if (o.what == "slurm") {
      out = RenderSbatch(spec, up);
    } else if (o.what == "k8s" || o.what == "kubernetes") {
      TREEPO_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(o.file, "cluster file"));
      std::string train_text;
      const std::string train_path = o.train_config.empty() ? spec.train_config : o.train_config;
      if (!train_path.empty()) {
        TREEPO_ASSIGN_OR_RETURN(train_text, ReadFileToString(train_path, "train config"));
      }
      TREEPO_ASSIGN_OR_RETURN(out, RenderKubernetes(spec, text, train_text));
    } else {
      return InvalidArgument("render: k8s or slurm, not '" + o.what + "'");
    }
  }
  std::cout << out << std::flush;
  return OkStatus();
}

void AddCommon(CLI::App* cmd, ClusterCmdOptions* o, bool train_keys) {
  cmd->add_option("FILE", o->file, "the cluster file (configs/cluster.example.toml)")->required();
  cmd->add_option("--set", o->sets, "override a key of the cluster file: key=value (repeatable)");
  if (train_keys) {
    cmd->add_option("--config", o->train_config,
                    "train settings (configs/default.toml keys); default: the file's train_config");
    cmd->add_option("--train-set", o->train_sets, "override a train key: key=value (repeatable)");
  }
}

}  // namespace

void RegisterCluster(CLI::App& app, int* exit_code) {
  CLI::App* cluster = app.add_subcommand(
      "cluster", "a multi-host run from a cluster file: up, status, scale, down, join, render");
  cluster->require_subcommand(1);
  auto add = [&](const std::string& name, const std::string& help, bool train_keys) {
    auto o = std::make_shared<ClusterCmdOptions>();
    CLI::App* cmd = cluster->add_subcommand(name, help);
    if (name == "render") {
      cmd->add_option("WHAT", o->what, "k8s (Kubernetes manifests) or slurm (the sbatch script)")
          ->required();
    }
    AddCommon(cmd, o.get(), train_keys);
    if (name == "scale") {
      cmd->add_option("WORKERS", o->scale, "workers=N, workers=+K or workers=-K")->required();
    }
    if (name == "down") {
      cmd->add_option("--grace-ms", o->grace_ms, "before SIGKILL")->capture_default_str();
    }
    if (name == "up") {
      cmd->add_option("--wait-s", o->wait_s, "for the head to answer")->capture_default_str();
      cmd->add_flag("--resume", o->resume,
                    "resume the run in the file's run_dir whose head died (`train --resume`): "
                    "workers still running rejoin, the learner restarts from its checkpoint");
    }
    if (name == "join") {
      cmd->add_option("--role", o->role, "worker or learner")->required();
      cmd->add_option("--name", o->name, "the worker's name (default: from the file)");
    }
    cmd->callback([o, name, exit_code] {
      InitLogging("cluster");
      std::signal(SIGINT, OnClusterSignal);
      std::signal(SIGTERM, OnClusterSignal);
      const Status st = RunClusterCmd(name, *o);
      if (!st.ok()) {
        spdlog::error("cluster {}: {}", name, st.ToString());
        *exit_code = 1;
      }
    });
  };
  add("up",
      "start the head (which starts the rest); inside a Slurm allocation take this task's role",
      true);
  add("status", "the processes, and the head's table: registered workers, versions, KV, rates",
      false);
  add("scale", "start or stop workers: workers=N | +K | -K", false);
  add("down", "stop the head, then every process; fetch the logs", false);
  add("join", "run one worker or learner of the file here (a Kubernetes Pod)", true);
  add("render", "print the Kubernetes manifests (k8s) or the sbatch script (slurm)", true);
}

}  // namespace treepo::cluster

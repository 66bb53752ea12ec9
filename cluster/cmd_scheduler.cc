// `treepo scheduler --config FILE [--set k=v ...]`: the scheduler of a real deployment. Binds
// the configured endpoint, waits for min_workers workers (`treepo worker --scheduler ...`),
// rolls out the configured prompt file, writes the tree file and the summary, then tells the
// workers to shut down. Keys: scheduler/service/rollout_job.h. stdout: the summary JSON.
#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cluster/command.h"
#include "cluster/plugins.h"
#include "common/config.h"
#include "common/log.h"
#include "scheduler/service/rollout_job.h"

namespace treepo::cluster {
namespace {

std::atomic<bool> g_scheduler_stop{false};
void OnSchedulerSignal(int) { g_scheduler_stop.store(true); }

struct SchedulerCmdOptions {
  std::string config_path;
  std::vector<std::string> sets;
  std::string endpoint_file;
};

Status RunSchedulerCmd(const SchedulerCmdOptions& o) {
  Config config;
  if (!o.config_path.empty()) {
    TREEPO_ASSIGN_OR_RETURN(config, Config::LoadTomlFile(o.config_path));
  }
  for (const std::string& s : o.sets) TREEPO_RETURN_IF_ERROR(config.Set(s));
  TREEPO_RETURN_IF_ERROR(LoadConfiguredPlugins(config).status());
  scheduler::RolloutJobOptions job;
  job.progress = false;
  TREEPO_RETURN_IF_ERROR(scheduler::LoadRolloutJobOptions(config, &job));
  spdlog::info("effective config:\n{}", config.ToString());
  auto on_bound = [&](const std::string& endpoint) -> Status {
    if (o.endpoint_file.empty()) return OkStatus();
    const std::string tmp = o.endpoint_file + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << endpoint << "\n";
      if (!f) return InvalidArgument("cannot write " + tmp);
    }
    // Renamed into place so a reader never sees a partial line.
    if (std::rename(tmp.c_str(), o.endpoint_file.c_str()) != 0) {
      return InvalidArgument("cannot rename " + tmp);
    }
    return OkStatus();
  };
  TREEPO_ASSIGN_OR_RETURN(scheduler::RolloutOutput out,
                          scheduler::RunRolloutJob(job, on_bound, &g_scheduler_stop));
  std::cout << scheduler::RolloutSummaryJson(out, job) << std::endl;
  return OkStatus();
}

}  // namespace

void RegisterScheduler(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<SchedulerCmdOptions>();
  CLI::App* cmd = app.add_subcommand("scheduler", "Run the rollout scheduler for remote workers");
  cmd->add_option("--config", opts->config_path, "TOML config (keys: docs/scheduler.md)");
  cmd->add_option("--set", opts->sets, "override a config key: key=value (repeatable)");
  cmd->add_option("--endpoint-file", opts->endpoint_file,
                  "write the bound endpoint (port resolved) to this file");
  cmd->callback([opts, exit_code] {
    InitLogging("scheduler");
    std::signal(SIGINT, OnSchedulerSignal);
    std::signal(SIGTERM, OnSchedulerSignal);
    const Status st = RunSchedulerCmd(*opts);
    if (!st.ok()) {
      spdlog::error("scheduler: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster

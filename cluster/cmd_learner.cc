// `treepo learner --scheduler tcp://HOST:PORT [--config F] [--set key=value ...]`: a learner
// serving one scheduler's RL loop (learner/service/learner_service.h lists the keys).
// SIGINT/SIGTERM stop it after a final checkpoint.
#include <atomic>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "cluster/command.h"
#include "cluster/plugins.h"
#include "common/config.h"
#include "common/log.h"
#include "learner/service/learner_service.h"

namespace treepo::cluster {
namespace {

std::atomic<bool> g_learner_stop{false};
void OnLearnerSignal(int) { g_learner_stop.store(true); }

struct LearnerCmdOptions {
  std::string scheduler;
  protocols::ClientKeyOptions keys;
  std::string config_path;
  std::vector<std::string> sets;
};

Status RunLearnerCmd(const LearnerCmdOptions& c) {
  Config config;
  if (!c.config_path.empty()) {
    TREEPO_ASSIGN_OR_RETURN(config, Config::LoadTomlFile(c.config_path));
  }
  for (const std::string& s : c.sets) TREEPO_RETURN_IF_ERROR(config.Set(s));
  TREEPO_RETURN_IF_ERROR(LoadConfiguredPlugins(config).status());
  learner::LearnerOptions o;
  o.trainer.backend = "auto";  // the GPU where there is one (the library's default is cpu)
  TREEPO_RETURN_IF_ERROR(learner::LoadLearnerOptions(config, "", &o));
  TREEPO_RETURN_IF_ERROR(config.CheckAllConsumed());
  o.scheduler_endpoint = c.scheduler;
  o.keys = c.keys;
  return learner::RunLearner(o, &g_learner_stop);
}

}  // namespace

void RegisterLearner(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<LearnerCmdOptions>();
  CLI::App* cmd = app.add_subcommand("learner", "Run a learner for a scheduler's RL loop");
  cmd->add_option("--scheduler", opts->scheduler, "scheduler endpoint tcp://HOST:PORT")->required();
  cmd->add_option("--config", opts->config_path, "TOML file with learner keys");
  cmd->add_option("--set", opts->sets, "override a key: key=value (repeatable)");
  cmd->add_option("--scheduler-key", opts->keys.scheduler_key_file,
                  "the scheduler's CURVE public key file (NAME.pub; docs/security.md)");
  cmd->add_option("--key", opts->keys.key_file, "this learner's CURVE key file (NAME.key)");
  cmd->add_flag("--insecure", opts->keys.insecure,
                "talk to a non-loopback scheduler without keys (warned on every start)");
  cmd->callback([opts, exit_code] {
    InitLogging("learner");
    std::signal(SIGINT, OnLearnerSignal);
    std::signal(SIGTERM, OnLearnerSignal);
    const Status st = RunLearnerCmd(*opts);
    if (!st.ok()) {
      spdlog::error("learner: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster

#include "cluster/plugins.h"

#include <filesystem>

#include "common/plugin/plugin_loader.h"
#include "learner/advantage/advantage.h"
#include "learner/service/learner_algorithm.h"
#include "scheduler/reward/reward_fn.h"
#include "scheduler/tree/policies.h"
#include "scheduler/tree/stop_rules.h"
#include "worker/engine/sampler.h"

namespace treepo::cluster {

Status LoadPluginFiles(const std::vector<std::string>& paths) {
  PluginHost host;
  host.reward = scheduler::RegisterRewardPlugin;
  host.estimator = learner::RegisterEstimatorPlugin;
  host.stop_rule = scheduler::RegisterStopRulePlugin;
  host.branching = scheduler::RegisterBranchingPlugin;
  host.sampler = worker::RegisterSamplerPlugin;
  host.learner = learner::RegisterLearnerPlugin;
  return LoadPlugins(paths, host);
}

Result<std::vector<std::string>> LoadConfiguredPlugins(const Config& config) {
  std::string list;
  TREEPO_RETURN_IF_ERROR(config.Get("plugins", &list));
  std::vector<std::string> paths;
  for (const std::string& p : SplitCommaList(list)) {
    std::error_code ec;
    const std::filesystem::path abs = std::filesystem::absolute(p, ec);
    paths.push_back(ec ? p : abs.lexically_normal().string());
  }
  TREEPO_RETURN_IF_ERROR(LoadPluginFiles(paths).WithContext("config key 'plugins'"));
  return paths;
}

std::string JoinPluginList(const std::vector<std::string>& paths) {
  std::string out;
  for (const std::string& p : paths) out += (out.empty() ? "" : ",") + p;
  return out;
}

}  // namespace treepo::cluster

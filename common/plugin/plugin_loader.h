// Loads plug-in shared libraries (common/plugin/treepo_plugin.h, docs/plugins.md) and hands
// each extension they register to the process's registries through a PluginHost.
//
// Thread-safety: LoadPlugins may be called from several threads; a process-wide mutex
// serialises loading. A library already loaded by this process (same canonical path) is not
// loaded again, so every process can load the configured list at start without double
// registrations. Libraries are never unloaded.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/plugin/treepo_plugin.h"
#include "common/status.h"

namespace treepo {

// Where registrations go: one hook per extension kind, each returning the refusal (e.g.
// kAlreadyExists) or OK. A null hook refuses that kind (this process does not host it).
struct PluginHost {
  std::function<Status(const TreepoRewardPlugin&)> reward;
  std::function<Status(const TreepoEstimatorPlugin&)> estimator;
  std::function<Status(const TreepoStopRulePlugin&)> stop_rule;
  std::function<Status(const TreepoBranchingPlugin&)> branching;
  std::function<Status(const TreepoSamplerPlugin&)> sampler;
  std::function<Status(const TreepoLearnerPlugin&)> learner;
};

// A comma-separated config value (how a TOML array such as `plugins = [...]` reads) split
// into its items, spaces around them trimmed, empty ones dropped.
std::vector<std::string> SplitCommaList(std::string_view list);

// Loads each library in order: kNotFound for a missing file, kFailedPrecondition for a file
// that dlopen refuses, lacks treepo_plugin_abi_version / treepo_plugin_init, or was built for
// another ABI version, and kInvalidArgument when its init fails or a registration is refused.
// Every message names the library. Stops at the first failure.
Status LoadPlugins(const std::vector<std::string>& paths, const PluginHost& host);

}  // namespace treepo

// Plug-in loading for every `treepo` command: the libraries named by the config key `plugins`
// (a TOML array of paths, or `--set plugins=a.so,b.so`) register into the registries of the
// scheduler (rewards, stop rules, branching policies), the learner (advantage estimators,
// learner algorithms) and the worker (token samplers).
// docs/plugins.md describes the ABI.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace treepo::cluster {

// Loads `paths` (see LoadPlugins in common/plugin/plugin_loader.h for the errors).
Status LoadPluginFiles(const std::vector<std::string>& paths);

// Reads the `plugins` key, loads each library, and returns their absolute paths (to hand to
// child processes, which may run in another directory). None configured: an empty list.
Result<std::vector<std::string>> LoadConfiguredPlugins(const Config& config);

// "a.so,b.so": the list as a `--set plugins=...` value.
std::string JoinPluginList(const std::vector<std::string>& paths);

}  // namespace treepo::cluster

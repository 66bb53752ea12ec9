#include "cluster/command.h"

namespace treepo::cluster {

// Each cmd_<name>.cc defines one of these.
void RegisterGenerate(CLI::App& app, int* exit_code);

const std::vector<RegisterFn>& AllCommands() {
  static const std::vector<RegisterFn> kCommands = {
      &RegisterGenerate,
  };
  return kCommands;
}

}  // namespace treepo::cluster

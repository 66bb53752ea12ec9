#include "cluster/command.h"

namespace treepo::cluster {

// Each cmd_<name>.cc defines one of these.
void RegisterGenerate(CLI::App& app, int* exit_code);
void RegisterGrad(CLI::App& app, int* exit_code);
void RegisterAdvantages(CLI::App& app, int* exit_code);
void RegisterWorker(CLI::App& app, int* exit_code);
void RegisterScheduler(CLI::App& app, int* exit_code);
void RegisterRollout(CLI::App& app, int* exit_code);
void RegisterScore(CLI::App& app, int* exit_code);
void RegisterPretrain(CLI::App& app, int* exit_code);
void RegisterEval(CLI::App& app, int* exit_code);
void RegisterLearner(CLI::App& app, int* exit_code);
void RegisterTrain(CLI::App& app, int* exit_code);
void RegisterKeys(CLI::App& app, int* exit_code);
void RegisterTokenize(CLI::App& app, int* exit_code);
void RegisterChatTemplate(CLI::App& app, int* exit_code);
void RegisterTop(CLI::App& app, int* exit_code);
void RegisterCluster(CLI::App& app, int* exit_code);

const std::vector<RegisterFn>& AllCommands() {
  static const std::vector<RegisterFn> kCommands = {
      &RegisterGenerate,  &RegisterGrad,         &RegisterAdvantages, &RegisterWorker,
      &RegisterScheduler, &RegisterRollout,      &RegisterScore,      &RegisterPretrain,
      &RegisterEval,      &RegisterLearner,      &RegisterTrain,      &RegisterKeys,
      &RegisterTokenize,  &RegisterChatTemplate, &RegisterTop,        &RegisterCluster,
  };
  return kCommands;
}

}  // namespace treepo::cluster

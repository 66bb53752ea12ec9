// The `treepo` command: parses the subcommand and runs it. Logs go to stderr.
#include <CLI/CLI.hpp>

#include "cluster/command.h"

int main(int argc, char** argv) {
  CLI::App app{"treepo: tree-structured RL rollouts (TreePO) for language models"};
  app.require_subcommand(1);
  int exit_code = 0;
  for (auto reg : treepo::cluster::AllCommands()) reg(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}

// The `treepo` command: parses the subcommand and runs it. Logs go to stderr.
//
// No exception leaves main: a bad input is reported by the subcommand as a Status, and
// anything a library still throws ends here as one error line and exit code 1 (never an
// abort with a core dump). Usage errors exit with 2 (CLI11's code for them is 105 and up;
// they are mapped to 2 as other Unix tools do).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <new>

#include "cluster/command.h"

int main(int argc, char** argv) {
  CLI::App app{"treepo: tree-structured RL rollouts (TreePO) for language models"};
  app.require_subcommand(1);
  int exit_code = 0;
  try {
    for (auto reg : treepo::cluster::AllCommands()) reg(app, &exit_code);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      const int code = app.exit(e);
      return code == 0 ? 0 : 2;
    }
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "treepo: error: out of memory (an input asked for more than fits)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "treepo: error: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "treepo: error: unknown exception\n");
    return 1;
  }
  return exit_code;
}

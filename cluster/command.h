// One `treepo` subcommand: a name, a one-line description, and how it adds itself to the
// command line parser. Each subcommand lives in its own cluster/cmd_<name>.cc and is listed
// once in cluster/commands.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace treepo::cluster {

// Adds a subcommand to `app`; the subcommand's callback sets `*exit_code`.
using RegisterFn = void (*)(CLI::App& app, int* exit_code);

// Every subcommand, in the order `treepo --help` lists them.
const std::vector<RegisterFn>& AllCommands();

}  // namespace treepo::cluster

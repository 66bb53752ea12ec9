// `treepo keys --out DIR [--role NAME]`: makes a CurveZMQ key pair for one party of a cluster
// (docs/security.md): DIR/NAME.pub (the public key, to hand to the other side) and
// DIR/NAME.key (public and secret key, mode 0600, never leaves the machine). Existing files
// are never overwritten.
#include <iostream>
#include <memory>
#include <string>

#include "cluster/command.h"
#include "common/log.h"
#include "protocols/curve_keys.h"
#include "protocols/transport.h"

namespace treepo::cluster {
namespace {

struct KeysCmdOptions {
  std::string out_dir;
  std::string role = "scheduler";
};

Status RunKeysCmd(const KeysCmdOptions& o) {
  if (o.out_dir.empty()) return InvalidArgument("keys: --out DIR is required");
  TREEPO_ASSIGN_OR_RETURN(protocols::CurveKeyPair pair, protocols::GenerateCurveKeyPair());
  TREEPO_RETURN_IF_ERROR(protocols::WriteKeyPairFiles(o.out_dir, o.role, pair));
  std::cout << o.out_dir << "/" << o.role << ".pub\n" << o.out_dir << "/" << o.role << ".key\n";
  return OkStatus();
}

}  // namespace

void RegisterKeys(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<KeysCmdOptions>();
  CLI::App* cmd = app.add_subcommand(
      "keys", "Make a CurveZMQ key pair (NAME.pub to share, NAME.key to keep, mode 0600)");
  cmd->add_option("--out", opts->out_dir, "directory for the key files (made 0700 if missing)")
      ->required();
  cmd->add_option("--role", opts->role,
                  "file name of the pair: scheduler, worker-1, learner, ... (default scheduler)");
  cmd->callback([opts, exit_code] {
    InitLogging("keys");
    const Status st = RunKeysCmd(*opts);
    if (!st.ok()) {
      spdlog::error("keys: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster

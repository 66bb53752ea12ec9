// Child processes for the local launcher: spawn `treepo worker ...` and friends, watch them,
// and make sure none outlives its parent (SIGTERM, then SIGKILL after a grace period).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace treepo::cluster {

class ChildProcess {
 public:
  // Starts `argv[0]` (a path) with `argv`; stdout/stderr go to `log_path` when not empty,
  // else are inherited. The child gets SIGTERM if this process dies (PR_SET_PDEATHSIG).
  static Result<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                    const std::string& log_path = "");

  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Terminates the child if it still runs (SIGTERM, then SIGKILL after 2 s).
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // True while the child has not exited. Reaps it when it has.
  bool Running();
  // The exit status once exited: the code, or 128 + signal. -1 while running.
  int exit_code() const { return exit_code_; }
  // Sends `signal`. No-op when the child has exited.
  void Signal(int signal);
  // Waits up to `timeout_ms` for exit; true when it exited.
  bool Wait(int timeout_ms);
  // SIGTERM, wait `grace_ms`, then SIGKILL and reap.
  void Terminate(int grace_ms = 2000);

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// The path of the running executable (/proc/self/exe), for launching `treepo` subcommands.
std::string SelfExecutable();

}  // namespace treepo::cluster

// Child processes for the local launcher: spawn `treepo worker ...` and friends, watch them
// (Supervisor), and make sure none outlives its parent (SIGTERM, then SIGKILL after a grace
// period).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "scheduler/service/scheduler_service.h"

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
  // The signal that ended the child, or 0 (running, or exited with a code).
  int term_signal() const { return term_signal_; }
  // "exit code N" or "signal N" once exited; "running" before.
  std::string ExitDescription() const;
  // Sends `signal`. No-op when the child has exited.
  void Signal(int signal);
  // Waits up to `timeout_ms` for exit; true when it exited.
  bool Wait(int timeout_ms);
  // SIGTERM, wait `grace_ms`, then SIGKILL and reap.
  void Terminate(int grace_ms = 2000);

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  int term_signal_ = 0;
};

// The last `lines` lines of the text file at `path` (at most its last 64 KiB), each prefixed
// with "  | "; "" when it cannot be read or is empty.
std::string LogTail(const std::string& path, int lines = 20);

// Watches the launcher's child processes from the scheduler's loop: Check() never blocks
// (one waitpid(WNOHANG) per child), so the loop calls it every turn as its liveness probe.
// A child that exits is reported at once, with its exit status and the tail of its log. A
// worker may go while another is left (the scheduler re-dispatches its tasks); an essential
// child (the learner) may not, nor the last worker: Check() then returns the error that ends
// the run. Children still running are terminated when the Supervisor is destroyed.
//
// Thread-safety: none; one owner thread.
class Supervisor {
 public:
  // Takes `child`. `name` is shown in messages ("learner", "worker-2"); `log_path` is its log
  // file ("" = none, its output goes to the terminal).
  void Add(const std::string& name, ChildProcess child, const std::string& log_path,
           bool essential);
  // Logs (warning) every worker that exited since the last call, with its exit status and its
  // log's last lines. Error (kUnavailable, sticky) when an essential child has exited, or every
  // worker has; the message names the child, its exit status and its log's last lines.
  Status Check();
  // Waits up to `timeout_ms` for the child `name` to exit, then terminates it if it still runs.
  void WaitOrTerminate(const std::string& name, int timeout_ms, int grace_ms = 1000);
  // The same for every child, each with its own timeout.
  void WaitOrTerminateAll(int timeout_ms, int grace_ms = 1000);
  // The names of the non-essential children (workers) whose exit Check() has reported since
  // the last call.
  std::vector<std::string> TakeExitedWorkers();
  // Makes essential child `name` (a learner of data-parallel rank `rank`) restartable: its
  // exit is logged and reported by TakeExitedLearners() instead of ending the run, and the
  // launcher starts a new one with Replace().
  void SetRestartable(const std::string& name, uint32_t rank);
  struct ExitedLearner {
    std::string name;
    uint32_t rank = 0;
    std::string message;  // exit status and log tail
  };
  std::vector<ExitedLearner> TakeExitedLearners();
  // Replaces child `name` by `child` (the old one is terminated if it still runs) and watches
  // the new one. False when there is no such child.
  bool Replace(const std::string& name, ChildProcess child);
  // The exit description of child `name` with its log tail, for a final report.
  std::string Describe(const std::string& name);
  // The child `name`, or null.
  ChildProcess* Find(const std::string& name);

 private:
  struct Watched {
    std::string name;
    ChildProcess process;
    std::string log_path;
    bool essential = false;
    bool reported = false;  // its exit has been reported
    int restart_rank = -1;  // >= 0: a restartable learner of that rank
  };
  std::string ExitMessage(Watched& w);

  std::vector<Watched> children_;
  std::vector<std::string> exited_workers_;  // reported, not yet taken
  std::vector<ExitedLearner> exited_learners_;
  Status error_;  // sticky once an essential child (or the last worker) has gone
};

// The scheduler's liveness probe for a launcher's children: Check(), and every worker that
// exited is declared dead at once (SchedulerService::WorkerGone), so its tasks are
// re-dispatched without waiting for the heartbeat timeout; a restartable learner that exited
// is declared dead the same way (SchedulerService::LearnerGone: the RL loop restarts it),
// unless it exited before it registered: that ends the run with its message.
// `children` outlives the probe.
scheduler::LivenessProbe SupervisorProbe(Supervisor* children);

// The path of the running executable (/proc/self/exe), for launching `treepo` subcommands.
std::string SelfExecutable();

}  // namespace treepo::cluster

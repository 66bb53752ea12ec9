// Launchers: how the processes of a cluster run are started on their hosts, signalled, checked
// and how their logs come back. One interface, chosen by the cluster file's `launcher` key:
//
//   local  the processes run on this machine (today's `train`);
//   ssh    OpenSSH to each host (BatchMode, key-based); processes run detached there, their
//          logs stay on the host (run_dir/logs) and are fetched by `cluster status`/`down`;
//   slurm  inside an allocation each node's task starts that node's processes itself
//          (`treepo cluster up` reads SLURM_PROCID); the head's launcher runs its own node's.
//
// A process is started detached (it outlives the command that started it, for `cluster up`
// and `cluster scale`) or attached (a `train` run's children: a local ChildProcess stands for
// it, so that the run's Supervisor notices its exit at once). Every started process is
// recorded in run_dir/procs/NAME.json for `cluster status/scale/down`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "cluster/job/train_processes.h"
#include "cluster/launch/cluster_spec.h"
#include "common/status.h"

namespace treepo::cluster {

// A started process, as saved in run_dir/procs/NAME.json.
struct ProcessRecord {
  std::string name, role, host, address, launcher;
  int64_t pid = 0;         // on its host (the detached wrapper's process group for ssh/local)
  std::string log_path;    // on its host
  int64_t started_ms = 0;  // wall clock
};

Status SaveProcessRecord(const std::string& run_dir, const ProcessRecord& r);
Result<std::vector<ProcessRecord>> LoadProcessRecords(const std::string& run_dir);
Status RemoveProcessRecord(const std::string& run_dir, const std::string& name);

struct CommandOutput {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
// Runs `argv` (argv[0] a path, or a name looked up on PATH) to completion, at most
// `timeout_ms`, its output captured.
Result<CommandOutput> RunCommand(std::vector<std::string> argv, int timeout_ms);

// `s` quoted for a POSIX shell.
std::string ShellQuote(const std::string& s);
std::string ShellJoin(const std::vector<std::string>& argv);

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual std::string name() const = 0;

  // Starts `spec` detached; its pid on the host.
  virtual Result<int64_t> StartDetached(const ProcessSpec& spec) = 0;
  // Starts `spec` for a run that watches it: the returned child exits when the process does,
  // with its exit status; its output (local) or the tail of the host's log (remote) goes to
  // `local_log`. `record` gets the process's pid on its host when it is known.
  virtual Result<ChildProcess> StartAttached(const ProcessSpec& spec, const std::string& local_log,
                                             ProcessRecord* record) = 0;
  // Watches a process started earlier (by a head that died): the returned child exits when
  // the process does, with its exit status, and the tail of its log goes to `local_log`.
  virtual Result<ChildProcess> Watch(const ProcessRecord& r, const std::string& local_log) = 0;
  // True when the processes it starts for a run outlive the head (ssh: each runs detached on
  // its host), so that a resumed head can take them back; false when they are the head's
  // children and get SIGTERM when it dies (local).
  virtual bool ProcessesOutliveHead() const = 0;
  // Sends `signal` to the process (its process group for detached ones).
  virtual Status Signal(const ProcessRecord& r, int signal) = 0;
  // Whether the process still runs.
  virtual Result<bool> Alive(const ProcessRecord& r) = 0;
  // The process's log file from its host ("" when it has none yet).
  virtual Result<std::string> ReadLog(const ProcessRecord& r) = 0;
  // Alive() of each record, one connection per host; an entry is an error when its host
  // could not be asked.
  virtual std::vector<Result<bool>> AliveAll(const std::vector<ProcessRecord>& rs);
  // ReadLog() of each record, one connection per host.
  virtual std::vector<Result<std::string>> ReadLogs(const std::vector<ProcessRecord>& rs);
};

// The launcher the file names. kubernetes has none (its processes are Pods: `cluster render
// k8s`); slurm's starts the processes of the node it runs on.
Result<std::unique_ptr<Launcher>> MakeLauncher(const ClusterSpec& spec);

// A launcher that runs everything on this machine (local, and slurm's own node).
std::unique_ptr<Launcher> MakeLocalLauncher();
// OpenSSH with the file's [ssh] settings.
std::unique_ptr<Launcher> MakeSshLauncher(const SshSpec& ssh);

}  // namespace treepo::cluster

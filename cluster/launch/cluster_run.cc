#include "cluster/launch/cluster_run.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "cluster/launch/launcher.h"
#include "cluster/launch/slurm.h"
#include "cluster/local_keys.h"
#include "common/atomic_file.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "common/log.h"
#include "scheduler/dashboard/dashboard.h"
#include "scheduler/dashboard/http_client.h"
#include "scheduler/dashboard/top.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// The index N of "worker-N", or 0.
int WorkerIndex(const std::string& name) {
  if (name.rfind("worker-", 0) != 0) return 0;
  return std::atoi(name.c_str() + 7);
}

// The head's dashboard URL: the fixed port of the file, else the URL file the head writes.
std::string DashboardUrl(const ClusterSpec& spec) {
  if (spec.dashboard_port != 0) {
    return "http://" + spec.head_address + ":" + std::to_string(spec.dashboard_port) + "/";
  }
  Result<std::string> url = ReadFileToString(
      (fs::path(spec.run_dir) / scheduler::dashboard::kDashboardUrlFile).string(), "URL file");
  return url.ok() ? Trim(*url) : "";
}

// The record of process `p` started now by `launcher` (pid 0 until known).
ProcessRecord RecordOf(const ProcessSpec& p, const Launcher& launcher, int64_t pid = 0) {
  ProcessRecord r;
  r.name = p.name;
  r.role = p.role;
  r.host = p.host;
  r.address = p.address;
  r.launcher = launcher.name();
  r.pid = pid;
  r.log_path = p.log_path;
  r.started_ms = WallNowMs();
  return r;
}

// A loaded train job of the cluster's config (nothing written), for building command lines.
Status LoadClusterJob(const ClusterSpec& spec, const Config& train_config, TrainJob* job) {
  TREEPO_RETURN_IF_ERROR(LoadTrainJob(train_config, job));
  SetStartModel(job);
  job->placement = ClusterPlacement(spec);
  job->executable = spec.binary;
  fs::path logs = fs::path(job->options.train.out_dir) / "logs";
  job->logs_dir = logs.string();
  return OkStatus();
}

// Copies each remote process's log into run_dir/logs/hosts/HOST/NAME.log.
void FetchLogs(const ClusterSpec& spec, Launcher* launcher, const std::vector<ProcessRecord>& rs,
               std::string* out) {
  if (launcher->name() != "ssh") return;
  std::vector<Result<std::string>> logs = launcher->ReadLogs(rs);
  for (size_t i = 0; i < rs.size(); ++i) {
    const ProcessRecord& r = rs[i];
    Result<std::string>& text = logs[i];
    if (!text.ok()) {
      *out += "  cannot fetch the log of " + r.name + ": " + text.status().ToString() + "\n";
      continue;
    }
    const fs::path dir = fs::path(spec.run_dir) / "logs" / "hosts" / r.host;
    std::error_code ec;
    fs::create_directories(dir, ec);
    (void)WriteFileAtomically((dir / (r.name + ".log")).string(), *text);
  }
}

// A resumed run (`train --resume RUN_DIR --cluster FILE`): what the dead head left running.
// Workers that still run are returned when `adopt_workers` (they register with the new head
// by themselves: --rejoin-timeout-ms); every other process still running (the learner, whose
// state is ahead of the checkpoint the run resumes from, or workers that cannot rejoin) is
// stopped: SIGTERM, SIGKILL after `grace_ms`. Only the hosts in `only` (empty: all).
Result<std::vector<ProcessRecord>> TakeOverLeftovers(const ClusterSpec& spec, Launcher* launcher,
                                                     bool adopt_workers,
                                                     const std::set<std::string>& only,
                                                     int grace_ms) {
  TREEPO_ASSIGN_OR_RETURN(std::vector<ProcessRecord> records, LoadProcessRecords(spec.run_dir));
  std::vector<ProcessRecord> candidates;
  for (const ProcessRecord& r : records) {
    if (r.role != "head" && (only.empty() || only.count(r.host) > 0)) candidates.push_back(r);
  }
  std::vector<ProcessRecord> adopted, stopping;
  std::vector<Result<bool>> alive = launcher->AliveAll(candidates);
  for (size_t i = 0; i < candidates.size(); ++i) {
    const ProcessRecord& r = candidates[i];
    if (!alive[i].ok()) {
      spdlog::warn("cannot tell whether {} (pid {} on {}) of the previous head still runs: {}",
                   r.name, r.pid, r.address, alive[i].status().ToString());
      continue;
    }
    if (!*alive[i]) continue;
    if (r.role == "worker" && adopt_workers) {
      spdlog::info("{} (pid {} on {}) of the previous head still runs: it rejoins this one", r.name,
                   r.pid, r.address);
      adopted.push_back(r);
    } else {
      spdlog::info("stopping {} (pid {} on {}) of the previous head{}", r.name, r.pid, r.address,
                   r.role == "learner" ? ": the run resumes from its newest checkpoint" : "");
      (void)launcher->Signal(r, SIGTERM);
      stopping.push_back(r);
    }
  }
  const int64_t deadline = SteadyNowMs() + grace_ms;
  while (!stopping.empty()) {
    std::vector<ProcessRecord> still;
    std::vector<Result<bool>> a = launcher->AliveAll(stopping);
    for (size_t i = 0; i < stopping.size(); ++i) {
      if (a[i].ok() && *a[i]) still.push_back(stopping[i]);
    }
    stopping.swap(still);
    if (stopping.empty()) break;
    if (SteadyNowMs() >= deadline) {
      for (const ProcessRecord& r : stopping) {
        spdlog::warn("{} (pid {} on {}) did not stop within {} ms: SIGKILL", r.name, r.pid,
                     r.address, grace_ms);
        (void)launcher->Signal(r, SIGKILL);
      }
      break;
    }
    SleepMs(100);
  }
  return adopted;
}

}  // namespace

Result<ClusterSpec> LoadClusterFile(const std::string& path, const std::vector<std::string>& sets) {
  TREEPO_ASSIGN_OR_RETURN(Config c, Config::LoadTomlFile(path));
  for (const std::string& s : sets) TREEPO_RETURN_IF_ERROR(c.Set(s));
  return ClusterSpecFromConfig(c, path);
}

Result<Config> ClusterTrainConfig(const ClusterSpec& spec, const std::string& train_config,
                                  const std::vector<std::string>& sets) {
  Config c;
  const std::string path = train_config.empty() ? spec.train_config : train_config;
  if (!path.empty()) {
    TREEPO_ASSIGN_OR_RETURN(c, Config::LoadTomlFile(path));
  }
  for (const auto& [k, v] : TrainKeysFromCluster(spec)) c.SetValue(k, v);
  for (const std::string& s : sets) TREEPO_RETURN_IF_ERROR(c.Set(s));
  return c;
}

std::vector<HostPlacement> ClusterPlacement(const ClusterSpec& spec) {
  std::vector<HostPlacement> out;
  for (const HostSpec& h : spec.hosts) {
    HostPlacement p;
    p.host = h.name;
    p.address = h.address;
    p.workers = h.workers;
    p.learners = h.learners;
    p.worker_threads = h.worker_threads;
    p.worker_pages = h.worker_pages;
    out.push_back(p);
  }
  return out;
}

Result<SlurmRole> ReadSlurmRole() {
  const char* job = std::getenv("SLURM_JOB_ID");
  const char* nodelist = std::getenv("SLURM_JOB_NODELIST");
  if (job == nullptr || nodelist == nullptr) {
    return FailedPrecondition("not inside a Slurm allocation (no SLURM_JOB_ID/SLURM_JOB_NODELIST)");
  }
  SlurmRole role;
  const char* procid = std::getenv("SLURM_PROCID");
  role.procid = procid ? std::atoi(procid) : 0;
  TREEPO_ASSIGN_OR_RETURN(CommandOutput out,
                          RunCommand({"scontrol", "show", "hostnames", nodelist}, 30000));
  if (out.exit_code != 0) {
    return Unavailable("`scontrol show hostnames " + std::string(nodelist) +
                       "` failed: " + Trim(out.output));
  }
  size_t start = 0;
  const std::string text = out.output;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    const std::string node = Trim(text.substr(start, nl - start));
    if (!node.empty()) role.nodes.push_back(node);
    start = nl + 1;
  }
  if (role.nodes.empty()) return Unavailable("SLURM_JOB_NODELIST names no node");
  return role;
}

Status ApplySlurmNodes(const SlurmRole& role, ClusterSpec* spec) {
  if (role.nodes.size() < spec->hosts.size()) {
    return InvalidArgument("the Slurm allocation has " + std::to_string(role.nodes.size()) +
                           " node(s), the cluster file " + std::to_string(spec->hosts.size()) +
                           " host(s): one node per [hosts.NAME] table");
  }
  for (size_t i = 0; i < spec->hosts.size(); ++i) spec->hosts[i].address = role.nodes[i];
  spec->head_address = role.nodes[0];
  return OkStatus();
}

namespace {

// Where the child that stands for `p` writes: a remote process's log stays on its host, and its
// watcher's output (the log's tail once it exits) is kept in the run's logs beside it.
std::string WatchLog(const Launcher& launcher, const std::string& name,
                     const std::string& log_path) {
  if (launcher.name() != "ssh") return log_path;
  return (fs::path(log_path).parent_path() / (name + ".ssh.log")).string();
}

}  // namespace

Result<Config> ClusterResumeConfig(const ClusterSpec& spec, const std::string& run_dir,
                                   const std::string& train_config,
                                   const std::vector<std::string>& sets) {
  std::error_code ec1, ec2;
  const fs::path given = fs::weakly_canonical(run_dir, ec1);
  const fs::path own = fs::weakly_canonical(spec.run_dir, ec2);
  if (ec1 || ec2 || given != own) {
    return InvalidArgument("--resume " + run_dir + ": the cluster file " + spec.path +
                           " runs in run_dir = " + spec.run_dir + "; resume that directory");
  }
  TREEPO_ASSIGN_OR_RETURN(Config c, LoadRunConfig(run_dir));
  if (!train_config.empty()) {
    TREEPO_ASSIGN_OR_RETURN(Config file, Config::LoadTomlFile(train_config));
    for (const auto& [key, value] : file.values()) c.SetValue(key, value);
  }
  for (const auto& [k, v] : TrainKeysFromCluster(spec)) c.SetValue(k, v);
  for (const std::string& s : sets) TREEPO_RETURN_IF_ERROR(c.Set(s));
  return c;
}

Status RunClusterTrain(const ClusterSpec& spec, const Config& train_config,
                       const std::vector<std::string>& hosts, const std::atomic<bool>* stop) {
  if (spec.curve) TREEPO_RETURN_IF_ERROR(LocalCurveKeys::EnsureKeyDir(spec.KeysDir()));
  std::unique_ptr<Launcher> launcher;
  if (spec.launcher != "kubernetes") {
    TREEPO_ASSIGN_OR_RETURN(launcher, MakeLauncher(spec));
  }
  const std::set<std::string> only(hosts.begin(), hosts.end());
  TrainJob job;
  job.placement = ClusterPlacement(spec);
  job.executable = spec.binary;
  auto start = [&](TrainJob* j, const std::string& endpoint) -> Status {
    if (!launcher) return OkStatus();  // Pods join by themselves
    j->start_process = [&launcher, &spec](const ProcessSpec& p) -> Result<ChildProcess> {
      ProcessRecord r = RecordOf(p, *launcher);
      Result<ChildProcess> c =
          launcher->StartAttached(p, WatchLog(*launcher, p.name, p.log_path), &r);
      if (!c.ok()) return c.status().WithContext("starting " + p.name + " on " + p.address);
      TREEPO_RETURN_IF_ERROR(SaveProcessRecord(spec.run_dir, r));
      spdlog::info("started {} on {} ({}, pid {})", p.name, p.address, r.launcher, r.pid);
      return c;
    };
    j->watch_log = [&launcher](const ProcessSpec& p) {
      return WatchLog(*launcher, p.name, p.log_path);
    };
    if (launcher->name() == "ssh") {
      // A remote process outlives its watcher: a replaced one is killed on its host.
      j->stop_process = [&launcher, &spec](const ProcessSpec& p) {
        Result<std::vector<ProcessRecord>> rs = LoadProcessRecords(spec.run_dir);
        if (!rs.ok()) return;
        for (const ProcessRecord& r : *rs) {
          if (r.name == p.name) (void)launcher->Signal(r, SIGKILL);
        }
      };
    }
    std::set<std::string> adopted;
    if (!j->options.train.resume.empty()) {
      // Resuming: the workers the dead head left rejoin (they register again on its endpoint)
      // and are watched again; its learner is replaced by one from the checkpoint.
      const bool adopt =
          launcher->ProcessesOutliveHead() && j->options.train.worker_rejoin_timeout_ms > 0;
      TREEPO_ASSIGN_OR_RETURN(std::vector<ProcessRecord> left,
                              TakeOverLeftovers(spec, launcher.get(), adopt, only, 10000));
      for (const ProcessRecord& r : left) {
        const std::string local_log = WatchLog(*launcher, r.name, r.log_path);
        Result<ChildProcess> c = launcher->Watch(r, local_log);
        if (!c.ok()) return c.status().WithContext("watching " + r.name + " on " + r.address);
        j->children.Add(r.name, std::move(*c), local_log, false);
        adopted.insert(r.name);
      }
    }
    std::vector<ProcessSpec> specs;
    for (ProcessSpec& p : PlanJobProcesses(j, endpoint)) {
      if ((only.empty() || only.count(p.host)) && adopted.count(p.name) == 0) {
        specs.push_back(std::move(p));
      }
    }
    return StartPlannedProcesses(j, specs);
  };
  const Status st = RunTrainJob(train_config, &job, start, stop);
  // Remote processes outlive their watchers: stop the ones a failed run left behind.
  if (launcher && launcher->name() == "ssh") {
    Result<std::vector<ProcessRecord>> rs = LoadProcessRecords(spec.run_dir);
    if (rs.ok()) {
      std::vector<ProcessRecord> others;
      for (const ProcessRecord& r : *rs) {
        if (r.role != "head") others.push_back(r);
      }
      std::vector<Result<bool>> alive = launcher->AliveAll(others);
      for (size_t i = 0; i < others.size(); ++i) {
        if (alive[i].ok() && *alive[i]) (void)launcher->Signal(others[i], SIGTERM);
      }
    }
  }
  return st;
}

Status RunClusterHost(const ClusterSpec& spec, const Config& train_config, const std::string& host,
                      const std::atomic<bool>* stop) {
  // The head (task 0) makes missing keys as it starts; the tasks start together.
  if (spec.curve) {
    const int64_t deadline = SteadyNowMs() + 120000;
    while (!fs::exists(fs::path(spec.KeysDir()) / "learner.key")) {
      if (SteadyNowMs() > deadline || (stop != nullptr && stop->load())) {
        return NotFound("no CurveZMQ keys in " + spec.KeysDir() +
                        " after 120 s (the head makes them; keys.dir must be shared)");
      }
      SleepMs(200);
    }
  }
  TrainJob job;
  TREEPO_RETURN_IF_ERROR(LoadClusterJob(spec, train_config, &job));
  TREEPO_RETURN_IF_ERROR(EnsureWritableDir(job.logs_dir, "run_dir/logs"));
  std::vector<std::pair<std::string, ChildProcess>> children;
  for (const ProcessSpec& p : PlanJobProcesses(&job, spec.SchedulerEndpoint())) {
    if (p.host != host) continue;
    TREEPO_ASSIGN_OR_RETURN(ChildProcess c, ChildProcess::Spawn(p.argv, p.log_path));
    spdlog::info("started {} (pid {}), log {}", p.name, c.pid(), p.log_path);
    children.emplace_back(p.name, std::move(c));
  }
  for (;;) {
    bool running = false;
    for (auto& [name, c] : children) running = c.Running() || running;
    if (!running) break;
    if (stop != nullptr && stop->load()) {
      for (auto& [name, c] : children) c.Terminate(10000);
      break;
    }
    SleepMs(200);
  }
  for (auto& [name, c] : children) {
    spdlog::info("{} ended: {}", name, c.ExitDescription());
  }
  return OkStatus();
}

Status ExecClusterProcess(const ClusterSpec& spec, const Config& train_config,
                          const std::string& role, const std::string& name) {
  if (role != "worker" && role != "learner") {
    return InvalidArgument("--role must be worker or learner, not '" + role + "'");
  }
  if (spec.head_port == 0) {
    return InvalidArgument("head.port: a joining process needs the head's fixed port");
  }
  TrainJob job;
  TREEPO_RETURN_IF_ERROR(LoadClusterJob(spec, train_config, &job));
  if (role == "learner" && job.options.train.learners != 1) {
    return InvalidArgument("a joining learner is the only rank: the file has " +
                           std::to_string(job.options.train.learners) + " learners");
  }
  HostPlacement here;
  here.host = "here";
  (role == "worker" ? here.workers : here.learners) = 1;
  job.placement = {here};
  std::vector<ProcessSpec> plan = PlanJobProcesses(&job, spec.SchedulerEndpoint());
  std::vector<std::string> argv = plan.at(0).argv;
  if (role == "worker" && !name.empty()) {
    auto it = std::find(argv.begin(), argv.end(), "--name");
    if (it != argv.end() && it + 1 != argv.end()) *(it + 1) = name;
  }
  spdlog::info("exec {}", ShellJoin(argv));
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  return Internal("cannot run " + argv[0] + ": " + std::strerror(errno));
}

Status ClusterUp(const ClusterSpec& spec_in, const ClusterUpOptions& o,
                 const std::atomic<bool>* stop) {
  ClusterSpec spec = spec_in;
  if (spec.launcher == "kubernetes") {
    return InvalidArgument(
        "the kubernetes launcher runs through kubectl: `treepo cluster render k8s FILE > "
        "manifests.yaml && kubectl apply -f manifests.yaml`");
  }
  if (o.resume && spec.launcher != "local" && spec.launcher != "ssh") {
    return InvalidArgument("cluster up --resume: the " + spec.launcher +
                           " launcher cannot resume a run; the local and ssh launchers can");
  }
  if (spec.launcher == "slurm") {
    if (std::getenv("SLURM_JOB_ID") == nullptr) {
      // Outside an allocation: submit one that runs `cluster up` on every node.
      TREEPO_RETURN_IF_ERROR(EnsureWritableDir(spec.run_dir, "run_dir"));
      if (spec.curve) TREEPO_RETURN_IF_ERROR(LocalCurveKeys::EnsureKeyDir(spec.KeysDir()));
      TREEPO_RETURN_IF_ERROR(
          EnsureWritableDir((fs::path(spec.run_dir) / "logs").string(), "run_dir/logs"));
      const std::string script = (fs::path(spec.run_dir) / (spec.name + ".sbatch")).string();
      TREEPO_RETURN_IF_ERROR(WriteFileAtomically(script, RenderSbatch(spec, o)));
      TREEPO_ASSIGN_OR_RETURN(CommandOutput out,
                              RunCommand({"sbatch", "--parsable", script}, 60000));
      if (out.exit_code != 0)
        return Unavailable("sbatch " + script + " failed: " + Trim(out.output));
      const std::string job_id = Trim(out.output).substr(0, Trim(out.output).find(';'));
      TREEPO_RETURN_IF_ERROR(
          WriteFileAtomically((fs::path(spec.run_dir) / "slurm_job_id").string(), job_id + "\n"));
      spdlog::info("submitted Slurm job {} ({})", job_id, script);
      return OkStatus();
    }
    TREEPO_ASSIGN_OR_RETURN(SlurmRole role, ReadSlurmRole());
    TREEPO_RETURN_IF_ERROR(ApplySlurmNodes(role, &spec));
    if (role.procid >= static_cast<int>(spec.hosts.size())) {
      spdlog::info("Slurm task {} has no host in {}: nothing to run", role.procid, spec.path);
      return OkStatus();
    }
    TREEPO_ASSIGN_OR_RETURN(Config train, ClusterTrainConfig(spec, o.train_config, o.train_sets));
    const std::string host = spec.hosts[role.procid].name;
    spdlog::info("Slurm task {} on {}: {}", role.procid, role.nodes[role.procid],
                 role.procid == 0 ? "the head and host " + host : "host " + host);
    if (role.procid == 0) return RunClusterTrain(spec, train, {host}, stop);
    return RunClusterHost(spec, train, host, stop);
  }
  // local, ssh: the head, detached.
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<Launcher> launcher, MakeLauncher(spec));
  TREEPO_ASSIGN_OR_RETURN(std::vector<ProcessRecord> records, LoadProcessRecords(spec.run_dir));
  for (const ProcessRecord& r : records) {
    if (r.role != "head") continue;
    Result<bool> alive = launcher->Alive(r);
    if (alive.ok() && *alive) {
      return FailedPrecondition("the head of " + spec.run_dir + " runs already (pid " +
                                std::to_string(r.pid) + " on " + r.address +
                                "): `treepo cluster down` first");
    }
  }
  // A new run: the old records go (a resumed one takes the processes they name back).
  std::error_code ec;
  if (!o.resume) fs::remove_all(fs::path(spec.run_dir) / "procs", ec);
  fs::remove(fs::path(spec.run_dir) / scheduler::dashboard::kDashboardUrlFile, ec);
  ProcessSpec head;
  head.name = "head";
  head.role = "head";
  head.host = "head";
  head.address = spec.head_address;
  head.argv = {spec.binary.empty() ? SelfExecutable() : spec.binary, "train", "--cluster", o.file};
  if (o.resume) {
    head.argv.push_back("--resume");
    head.argv.push_back(spec.run_dir);
  }
  for (const std::string& s : o.sets) {
    head.argv.push_back("--cluster-set");
    head.argv.push_back(s);
  }
  if (!o.train_config.empty()) {
    head.argv.push_back("--config");
    head.argv.push_back(o.train_config);
  }
  for (const std::string& s : o.train_sets) {
    head.argv.push_back("--set");
    head.argv.push_back(s);
  }
  head.log_path = (fs::path(spec.run_dir) / "logs" / "head.log").string();
  TREEPO_ASSIGN_OR_RETURN(const int64_t pid, launcher->StartDetached(head));
  ProcessRecord r = RecordOf(head, *launcher, pid);
  TREEPO_RETURN_IF_ERROR(SaveProcessRecord(spec.run_dir, r));
  spdlog::info("head started on {} (pid {}), log {}", head.address, pid, head.log_path);
  // Up when its dashboard answers /healthz.
  const int64_t deadline = SteadyNowMs() + o.wait_ms;
  while (SteadyNowMs() < deadline && (stop == nullptr || !stop->load())) {
    const std::string url = DashboardUrl(spec);
    if (!url.empty()) {
      Result<scheduler::dashboard::HttpResponse> h =
          scheduler::dashboard::HttpGet(url + "healthz", spec.dashboard_token, 2000);
      if (h.ok() && h->status == 200) {
        spdlog::info("head up: dashboard {}", url);
        return OkStatus();
      }
    }
    Result<bool> alive = launcher->Alive(r);
    if (alive.ok() && !*alive) {
      Result<std::string> log = launcher->ReadLog(r);
      return Unavailable("the head exited before answering; " + head.log_path + ":\n" +
                         (log.ok() ? *log : log.status().ToString()));
    }
    SleepMs(250);
  }
  return Unavailable("the head did not answer /healthz within " + std::to_string(o.wait_ms / 1000) +
                     " s (log " + head.log_path + ")");
}

Status ClusterStatus(const ClusterSpec& spec, std::string* out) {
  TREEPO_ASSIGN_OR_RETURN(std::vector<ProcessRecord> records, LoadProcessRecords(spec.run_dir));
  std::unique_ptr<Launcher> launcher;
  if (spec.launcher != "kubernetes") {
    TREEPO_ASSIGN_OR_RETURN(launcher, MakeLauncher(spec));
  }
  char line[512];
  std::snprintf(line, sizeof(line), "%-12s %-8s %-16s %-8s %-8s %s\n", "PROCESS", "ROLE", "HOST",
                "PID", "STATE", "LOG");
  *out += line;
  std::vector<Result<bool>> alive;
  if (launcher) alive = launcher->AliveAll(records);
  for (size_t i = 0; i < records.size(); ++i) {
    const ProcessRecord& r = records[i];
    std::string state = "?";
    if (launcher) state = !alive[i].ok() ? "unknown" : (*alive[i] ? "running" : "exited");
    std::snprintf(line, sizeof(line), "%-12s %-8s %-16s %-8lld %-8s %s\n", r.name.c_str(),
                  r.role.c_str(), r.address.c_str(), static_cast<long long>(r.pid), state.c_str(),
                  r.log_path.c_str());
    *out += line;
  }
  if (records.empty()) *out += "(no processes recorded in " + spec.run_dir + "/procs)\n";
  if (launcher) FetchLogs(spec, launcher.get(), records, out);
  const std::string url = DashboardUrl(spec);
  if (url.empty()) {
    *out += "\nhead: no dashboard URL (is the head running?)\n";
    return OkStatus();
  }
  Result<scheduler::dashboard::HttpResponse> h =
      scheduler::dashboard::HttpGet(url + "api/cluster", spec.dashboard_token, 5000);
  if (!h.ok() || h->status != 200) {
    *out += "\nhead: " + url + " does not answer (" +
            (h.ok() ? "HTTP " + std::to_string(h->status) : h.status().ToString()) + ")\n";
    return OkStatus();
  }
  try {
    *out += "\n" + scheduler::dashboard::FormatClusterTable(nlohmann::json::parse(h->body), 120);
  } catch (const nlohmann::json::exception& e) {
    return Internal(url + "api/cluster: not JSON: " + e.what());
  }
  return OkStatus();
}

Status ClusterScale(const ClusterSpec& spec, const std::string& request, std::string* out) {
  const std::string prefix = "workers=";
  if (request.rfind(prefix, 0) != 0 || request.size() == prefix.size()) {
    return InvalidArgument("scale: expected workers=N, workers=+K or workers=-K, got '" + request +
                           "'");
  }
  const std::string v = request.substr(prefix.size());
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (*end != '\0') return InvalidArgument("scale: '" + v + "' is not a number");
  if (spec.launcher == "kubernetes") {
    return InvalidArgument("kubernetes: `kubectl scale deployment/" + spec.name +
                           "-worker --replicas=N`");
  }
  if (spec.launcher == "slurm") {
    return InvalidArgument("slurm: an allocation's nodes are fixed; submit a larger job");
  }
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<Launcher> launcher, MakeLauncher(spec));
  TREEPO_ASSIGN_OR_RETURN(std::vector<ProcessRecord> records, LoadProcessRecords(spec.run_dir));
  std::vector<ProcessRecord> alive_workers;
  int next_index = 1;
  std::map<std::string, int> per_host;
  std::vector<Result<bool>> alive_all = launcher->AliveAll(records);
  for (size_t i = 0; i < records.size(); ++i) {
    const ProcessRecord& r = records[i];
    if (r.role != "worker") continue;
    next_index = std::max(next_index, WorkerIndex(r.name) + 1);
    TREEPO_ASSIGN_OR_RETURN(const bool alive, std::move(alive_all[i]));
    if (!alive) continue;
    alive_workers.push_back(r);
    ++per_host[r.host];
  }
  const int current = static_cast<int>(alive_workers.size());
  const int target =
      (v[0] == '+' || v[0] == '-') ? current + static_cast<int>(n) : static_cast<int>(n);
  if (target < 1) return InvalidArgument("scale: at least one worker must stay");
  *out += "workers: " + std::to_string(current) + " -> " + std::to_string(target) + "\n";
  if (target < current) {
    std::sort(alive_workers.begin(), alive_workers.end(),
              [](const ProcessRecord& a, const ProcessRecord& b) {
                return WorkerIndex(a.name) > WorkerIndex(b.name);
              });
    for (int i = 0; i < current - target; ++i) {
      const ProcessRecord& r = alive_workers[i];
      TREEPO_RETURN_IF_ERROR(launcher->Signal(r, SIGTERM));
      *out += "  stopping " + r.name + " on " + r.address + " (SIGTERM)\n";
    }
    return OkStatus();
  }
  if (target == current) return OkStatus();
  // New workers serve the running head: its endpoint, its keys.
  std::string endpoint = spec.SchedulerEndpoint();
  if (spec.head_port == 0) {
    Result<std::string> e =
        ReadFileToString((fs::path(spec.run_dir) / "endpoint").string(), "endpoint file");
    if (!e.ok()) return FailedPrecondition("scale: no running head in " + spec.run_dir);
    endpoint = Trim(*e);
  }
  TREEPO_ASSIGN_OR_RETURN(Config train, ClusterTrainConfig(spec, "", {}));
  TrainJob job;
  TREEPO_RETURN_IF_ERROR(LoadClusterJob(spec, train, &job));
  for (int i = 0; i < target - current; ++i) {
    // The host that runs workers and has the fewest now.
    const HostSpec* host = nullptr;
    for (const HostSpec& h : spec.hosts) {
      if (h.workers == 0) continue;
      if (host == nullptr || per_host[h.name] < per_host[host->name]) host = &h;
    }
    if (host == nullptr) return InvalidArgument("scale: no host of the file runs workers");
    HostPlacement p;
    p.host = host->name;
    p.address = host->address;
    p.workers = 1;
    p.worker_threads = host->worker_threads;
    p.worker_pages = host->worker_pages;
    job.placement = {p};
    ProcessSpec w = PlanJobProcesses(&job, endpoint).at(0);
    const std::string name = WorkerName(next_index - 1);
    auto it = std::find(w.argv.begin(), w.argv.end(), "--name");
    if (it != w.argv.end() && it + 1 != w.argv.end()) *(it + 1) = name;
    w.name = name;
    w.log_path = (fs::path(job.logs_dir) / (name + ".log")).string();
    TREEPO_ASSIGN_OR_RETURN(const int64_t pid, launcher->StartDetached(w));
    ProcessRecord r = RecordOf(w, *launcher, pid);
    r.role = "worker";
    TREEPO_RETURN_IF_ERROR(SaveProcessRecord(spec.run_dir, r));
    ++per_host[host->name];
    ++next_index;
    *out += "  started " + name + " on " + w.address + " (pid " + std::to_string(pid) + ")\n";
  }
  return OkStatus();
}

Status ClusterDown(const ClusterSpec& spec, int grace_ms, std::string* out) {
  if (spec.launcher == "kubernetes") {
    return InvalidArgument("kubernetes: `kubectl delete -f manifests.yaml`");
  }
  const fs::path job_file = fs::path(spec.run_dir) / "slurm_job_id";
  if (spec.launcher == "slurm" && fs::exists(job_file)) {
    TREEPO_ASSIGN_OR_RETURN(std::string id, ReadFileToString(job_file.string(), "Slurm job id"));
    id = Trim(id);
    TREEPO_ASSIGN_OR_RETURN(CommandOutput c, RunCommand({"scancel", "--signal=TERM", id}, 30000));
    *out += "scancel " + id + ": " + (c.exit_code == 0 ? "ok" : Trim(c.output)) + "\n";
    std::error_code ec;
    fs::remove(job_file, ec);
    return OkStatus();
  }
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<Launcher> launcher, MakeLauncher(spec));
  TREEPO_ASSIGN_OR_RETURN(std::vector<ProcessRecord> records, LoadProcessRecords(spec.run_dir));
  auto wait_gone = [&](const std::vector<ProcessRecord>& rs, int ms) {
    const int64_t deadline = SteadyNowMs() + ms;
    std::vector<ProcessRecord> left = rs;
    while (!left.empty() && SteadyNowMs() < deadline) {
      std::vector<ProcessRecord> still;
      std::vector<Result<bool>> a = launcher->AliveAll(left);
      for (size_t i = 0; i < left.size(); ++i) {
        if (!a[i].ok() || *a[i]) still.push_back(left[i]);
      }
      left.swap(still);
      if (!left.empty()) SleepMs(200);
    }
    return left;
  };
  // The head first: it shuts its workers and learners down and writes its checkpoint.
  std::vector<ProcessRecord> heads, others;
  for (const ProcessRecord& r : records) (r.role == "head" ? heads : others).push_back(r);
  for (const ProcessRecord& r : heads) {
    if (launcher->Signal(r, SIGTERM).ok())
      *out += "stopping the head (pid " + std::to_string(r.pid) + ")\n";
  }
  for (const ProcessRecord& r : wait_gone(heads, grace_ms)) {
    (void)launcher->Signal(r, SIGKILL);
    *out += "the head did not stop within " + std::to_string(grace_ms) + " ms: SIGKILL\n";
  }
  std::vector<Result<bool>> others_alive = launcher->AliveAll(others);
  for (size_t i = 0; i < others.size(); ++i) {
    const ProcessRecord& r = others[i];
    if (others_alive[i].ok() && *others_alive[i] && launcher->Signal(r, SIGTERM).ok()) {
      *out += "stopping " + r.name + "\n";
    }
  }
  for (const ProcessRecord& r : wait_gone(others, grace_ms)) {
    (void)launcher->Signal(r, SIGKILL);
    *out += r.name + " did not stop within " + std::to_string(grace_ms) + " ms: SIGKILL\n";
  }
  FetchLogs(spec, launcher.get(), records, out);
  for (const ProcessRecord& r : records) (void)RemoveProcessRecord(spec.run_dir, r.name);
  *out += std::to_string(records.size()) + " process(es) down\n";
  return OkStatus();
}

}  // namespace treepo::cluster

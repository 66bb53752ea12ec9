#include "cluster/launch/launcher.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "common/log.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

fs::path ProcsDir(const std::string& run_dir) { return fs::path(run_dir) / "procs"; }

// The first `name` on PATH, else `name` itself (execv then fails with a clear log line).
std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t colon = p.find(':', start);
    if (colon == std::string::npos) colon = p.size();
    const fs::path candidate = fs::path(p.substr(start, colon - start)) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = colon + 1;
  }
  return name;
}

}  // namespace

Result<CommandOutput> RunCommand(std::vector<std::string> argv, int timeout_ms) {
  if (argv.empty()) return InvalidArgument("run: empty command");
  if (argv[0].find('/') == std::string::npos) argv[0] = FindOnPath(argv[0]);
  std::string tmpl = (fs::temp_directory_path() / "treepo-cmd-XXXXXX").string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return Internal(std::string("cannot make a temporary file: ") + std::strerror(errno));
  ::close(fd);
  CommandOutput out;
  {
    TREEPO_ASSIGN_OR_RETURN(ChildProcess c, ChildProcess::Spawn(argv, tmpl));
    if (!c.Wait(timeout_ms)) {
      c.Terminate(1000);
      std::error_code ec;
      fs::remove(tmpl, ec);
      return Unavailable("`" + ShellJoin(argv) + "` did not finish within " +
                         std::to_string(timeout_ms / 1000) + " s");
    }
    out.exit_code = c.exit_code();
  }
  Result<std::string> text = ReadFileToString(tmpl, "command output");
  std::error_code ec;
  fs::remove(tmpl, ec);
  if (text.ok()) out.output = *text;
  return out;
}

namespace {

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// The shell script that starts `spec` detached and prints its pid: a wrapper in a session of
// its own (so that a signal to its process group reaches the process, and a hang-up of the
// launching connection does not) that records the exit status in LOG.exit.
std::string DetachedScript(const ProcessSpec& spec, const std::string& workdir) {
  const std::string log = ShellQuote(spec.log_path);
  const std::string ready = ShellQuote(spec.log_path + ".pid");
  std::string s;
  if (!workdir.empty()) s += "cd " + ShellQuote(workdir) + " && ";
  // The pid is printed once the wrapper runs in its own session with its trap set (it writes
  // LOG.pid then), so that a signal sent right after the start reaches the process.
  s += "mkdir -p \"$(dirname " + log + ")\" && rm -f " + ShellQuote(spec.log_path + ".exit") + " " +
       ready + " && { setsid /bin/sh -c 'trap : TERM INT HUP; echo $$ > \"$0.pid\"; " +
       "\"$@\"; echo $? > \"$0.exit\"' " + log + " " + ShellJoin(spec.argv) + " >>" + log +
       " 2>&1 </dev/null & p=$!; i=0; while [ ! -s " + ready +
       " ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done; echo $p; }";
  return s;
}

// Waits for `pid` to end, prints the last lines of its log, and exits with its exit status
// (255: unknown).
std::string WatchScript(const ProcessRecord& r, const std::string& workdir) {
  const std::string log = ShellQuote(r.log_path);
  std::string s;
  if (!workdir.empty()) s += "cd " + ShellQuote(workdir) + "; ";
  s += "while kill -0 " + std::to_string(r.pid) + " 2>/dev/null; do sleep 0.5; done; tail -n 40 " +
       log + " 2>/dev/null; c=$(cat " + ShellQuote(r.log_path + ".exit") +
       " 2>/dev/null); exit ${c:-255}";
  return s;
}

// Runs shell scripts on a host: here (local) or through ssh.
class ShellLauncher : public Launcher {
 public:
  Result<int64_t> StartDetached(const ProcessSpec& spec) override {
    TREEPO_ASSIGN_OR_RETURN(CommandOutput out,
                            RunScript(spec.address, DetachedScript(spec, Workdir()), 60000));
    const std::string text = Trimmed(out.output);
    const size_t nl = text.find_last_of('\n');
    const std::string last = nl == std::string::npos ? text : text.substr(nl + 1);
    char* end = nullptr;
    const long long pid = std::strtoll(last.c_str(), &end, 10);
    if (out.exit_code != 0 || last.empty() || *end != '\0' || pid <= 0) {
      return Unavailable(name() + " launcher: starting " + spec.name + " on " + spec.address +
                         " failed (exit " + std::to_string(out.exit_code) + "): " + text);
    }
    return static_cast<int64_t>(pid);
  }

  Result<ChildProcess> Watch(const ProcessRecord& r, const std::string& local_log) override {
    return ChildProcess::Spawn(ScriptArgv(r.address, WatchScript(r, Workdir())), local_log);
  }

  Status Signal(const ProcessRecord& r, int signal) override {
    TREEPO_ASSIGN_OR_RETURN(CommandOutput out,
                            RunScript(r.address,
                                      "kill -" + std::to_string(signal) + " -- -" +
                                          std::to_string(r.pid) + " 2>/dev/null || kill -" +
                                          std::to_string(signal) + " " + std::to_string(r.pid),
                                      30000));
    if (out.exit_code != 0) {
      return NotFound(r.name + " (pid " + std::to_string(r.pid) + " on " + r.address +
                      ") is not running");
    }
    return OkStatus();
  }

  Result<bool> Alive(const ProcessRecord& r) override {
    TREEPO_ASSIGN_OR_RETURN(
        CommandOutput out,
        RunScript(r.address,
                  "kill -0 " + std::to_string(r.pid) + " 2>/dev/null && echo alive || echo gone",
                  30000));
    const std::string t = Trimmed(out.output);
    if (out.exit_code != 0 || (t != "alive" && t != "gone")) {
      return Unavailable(name() + " launcher: cannot check " + r.name + " on " + r.address + ": " +
                         t);
    }
    return t == "alive";
  }

  std::vector<Result<bool>> AliveAll(const std::vector<ProcessRecord>& rs) override {
    std::vector<Result<bool>> out(rs.size(), Unavailable("not asked"));
    for (const auto& [address, idx] : ByAddress(rs)) {
      std::string script;
      for (size_t i : idx) {
        script += "kill -0 " + std::to_string(rs[i].pid) + " 2>/dev/null && echo 1 || echo 0; ";
      }
      Result<CommandOutput> c = RunScript(address, script, 30000);
      std::vector<std::string> lines;
      if (c.ok() && c->exit_code == 0) lines = Lines(c->output);
      for (size_t k = 0; k < idx.size(); ++k) {
        if (lines.size() == idx.size() && (lines[k] == "1" || lines[k] == "0")) {
          out[idx[k]] = lines[k] == "1";
        } else {
          out[idx[k]] = Unavailable(name() + " launcher: cannot check processes on " + address);
        }
      }
    }
    return out;
  }

  std::vector<Result<std::string>> ReadLogs(const std::vector<ProcessRecord>& rs) override {
    std::vector<Result<std::string>> out(rs.size(), Unavailable("not read"));
    const std::string mark = "\n==== treepo log end ====\n";
    for (const auto& [address, idx] : ByAddress(rs)) {
      std::string script;
      if (!Workdir().empty()) script += "cd " + ShellQuote(Workdir()) + "; ";
      for (size_t i : idx) {
        script += "cat " + ShellQuote(rs[i].log_path) + " 2>/dev/null; printf '" + mark + "'; ";
      }
      Result<CommandOutput> c = RunScript(address, script, 60000);
      if (!c.ok() || c->exit_code != 0) {
        for (size_t i : idx)
          out[i] = Unavailable(name() + " launcher: cannot read logs on " + address);
        continue;
      }
      const std::string m = "\n==== treepo log end ====\n";
      size_t pos = 0;
      for (size_t i : idx) {
        const size_t end = c->output.find(m, pos);
        if (end == std::string::npos) break;
        out[i] = c->output.substr(pos, end - pos);
        pos = end + m.size();
      }
    }
    return out;
  }

  Result<std::string> ReadLog(const ProcessRecord& r) override {
    std::string script;
    if (!Workdir().empty()) script += "cd " + ShellQuote(Workdir()) + "; ";
    script += "cat " + ShellQuote(r.log_path) + " 2>/dev/null; true";
    TREEPO_ASSIGN_OR_RETURN(CommandOutput out, RunScript(r.address, script, 60000));
    if (out.exit_code != 0) {
      return Unavailable(name() + " launcher: cannot read " + r.log_path + " on " + r.address);
    }
    return out.output;
  }

 protected:
  // The argv that runs `script` on `address`.
  virtual std::vector<std::string> ScriptArgv(const std::string& address,
                                              const std::string& script) const = 0;
  // The directory scripts run in on the host ("" = where they start).
  virtual std::string Workdir() const { return ""; }

  Result<CommandOutput> RunScript(const std::string& address, const std::string& script,
                                  int timeout_ms) {
    return RunCommand(ScriptArgv(address, script), timeout_ms);
  }

  // The records' indices per host address.
  static std::map<std::string, std::vector<size_t>> ByAddress(
      const std::vector<ProcessRecord>& rs) {
    std::map<std::string, std::vector<size_t>> out;
    for (size_t i = 0; i < rs.size(); ++i) out[rs[i].address].push_back(i);
    return out;
  }

  static std::vector<std::string> Lines(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      out.push_back(text.substr(start, nl - start));
      start = nl + 1;
    }
    return out;
  }
};

class LocalLauncher : public ShellLauncher {
 public:
  std::string name() const override { return "local"; }
  bool ProcessesOutliveHead() const override { return false; }

  Result<ChildProcess> StartAttached(const ProcessSpec& spec, const std::string& local_log,
                                     ProcessRecord* record) override {
    TREEPO_ASSIGN_OR_RETURN(ChildProcess c, ChildProcess::Spawn(spec.argv, local_log));
    record->pid = c.pid();
    return c;
  }

  Status Signal(const ProcessRecord& r, int signal) override {
    // A detached process leads its process group; an attached one is a plain child.
    if (::kill(-static_cast<pid_t>(r.pid), signal) == 0) return OkStatus();
    if (::kill(static_cast<pid_t>(r.pid), signal) == 0) return OkStatus();
    return NotFound(r.name + " (pid " + std::to_string(r.pid) + ") is not running");
  }

  Result<bool> Alive(const ProcessRecord& r) override {
    return ::kill(static_cast<pid_t>(r.pid), 0) == 0 || errno == EPERM;
  }
  std::vector<Result<bool>> AliveAll(const std::vector<ProcessRecord>& rs) override {
    return Launcher::AliveAll(rs);
  }
  std::vector<Result<std::string>> ReadLogs(const std::vector<ProcessRecord>& rs) override {
    return Launcher::ReadLogs(rs);
  }

  Result<std::string> ReadLog(const ProcessRecord& r) override {
    if (!fs::exists(r.log_path)) return std::string();
    return ReadFileToString(r.log_path, "log");
  }

 protected:
  std::vector<std::string> ScriptArgv(const std::string&,
                                      const std::string& script) const override {
    return {"/bin/sh", "-c", script};
  }
};

class SshLauncher : public ShellLauncher {
 public:
  explicit SshLauncher(SshSpec ssh) : ssh_(std::move(ssh)), ssh_path_(FindOnPath("ssh")) {
    std::error_code ec;
    workdir_ = fs::current_path(ec).string();
  }
  std::string name() const override { return "ssh"; }
  bool ProcessesOutliveHead() const override { return true; }

  Result<ChildProcess> StartAttached(const ProcessSpec& spec, const std::string& local_log,
                                     ProcessRecord* record) override {
    TREEPO_ASSIGN_OR_RETURN(record->pid, StartDetached(spec));
    return Watch(*record, local_log);
  }

 protected:
  std::vector<std::string> ScriptArgv(const std::string& address,
                                      const std::string& script) const override {
    std::vector<std::string> argv = {
        ssh_path_, "-T",
        "-o",      "BatchMode=yes",
        "-o",      "ConnectTimeout=" + std::to_string(ssh_.connect_timeout_s),
        "-o",      "ServerAliveInterval=15",
        "-p",      std::to_string(ssh_.port)};
    if (!ssh_.identity_file.empty()) {
      argv.push_back("-i");
      argv.push_back(ssh_.identity_file);
      argv.push_back("-o");
      argv.push_back("IdentitiesOnly=yes");
    }
    for (const std::string& o : ssh_.options) {
      argv.push_back("-o");
      argv.push_back(o);
    }
    argv.push_back(ssh_.user.empty() ? address : ssh_.user + "@" + address);
    argv.push_back("--");
    argv.push_back(script);
    return argv;
  }
  std::string Workdir() const override { return workdir_; }

 private:
  SshSpec ssh_;
  std::string ssh_path_;
  std::string workdir_;  // this machine's working directory: the same path on every host
};

}  // namespace

std::string ShellQuote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_./=:,+@%") == std::string::npos) {
    return s;
  }
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'') {
      out += "'\\''";
    } else {
      out += ch;
    }
  }
  return out + "'";
}

std::string ShellJoin(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    out += ShellQuote(a);
  }
  return out;
}

Status SaveProcessRecord(const std::string& run_dir, const ProcessRecord& r) {
  std::error_code ec;
  fs::create_directories(ProcsDir(run_dir), ec);
  const nlohmann::json j = {{"name", r.name},         {"role", r.role},
                            {"host", r.host},         {"address", r.address},
                            {"launcher", r.launcher}, {"pid", r.pid},
                            {"log", r.log_path},      {"started_ms", r.started_ms}};
  return WriteFileAtomically((ProcsDir(run_dir) / (r.name + ".json")).string(), j.dump(2) + "\n");
}

Result<std::vector<ProcessRecord>> LoadProcessRecords(const std::string& run_dir) {
  std::vector<ProcessRecord> out;
  std::error_code ec;
  if (!fs::is_directory(ProcsDir(run_dir), ec)) return out;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(ProcsDir(run_dir), ec)) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    TREEPO_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(f.string(), "process record"));
    try {
      const nlohmann::json j = nlohmann::json::parse(text);
      ProcessRecord r;
      r.name = j.at("name").get<std::string>();
      r.role = j.at("role").get<std::string>();
      r.host = j.at("host").get<std::string>();
      r.address = j.at("address").get<std::string>();
      r.launcher = j.at("launcher").get<std::string>();
      r.pid = j.at("pid").get<int64_t>();
      r.log_path = j.at("log").get<std::string>();
      r.started_ms = j.value("started_ms", int64_t{0});
      out.push_back(std::move(r));
    } catch (const nlohmann::json::exception& e) {
      return InvalidArgument("process record " + f.string() + ": " + e.what());
    }
  }
  return out;
}

Status RemoveProcessRecord(const std::string& run_dir, const std::string& name) {
  std::error_code ec;
  fs::remove(ProcsDir(run_dir) / (name + ".json"), ec);
  return OkStatus();
}

std::vector<Result<bool>> Launcher::AliveAll(const std::vector<ProcessRecord>& rs) {
  std::vector<Result<bool>> out;
  for (const ProcessRecord& r : rs) out.push_back(Alive(r));
  return out;
}

std::vector<Result<std::string>> Launcher::ReadLogs(const std::vector<ProcessRecord>& rs) {
  std::vector<Result<std::string>> out;
  for (const ProcessRecord& r : rs) out.push_back(ReadLog(r));
  return out;
}

std::unique_ptr<Launcher> MakeLocalLauncher() { return std::make_unique<LocalLauncher>(); }

std::unique_ptr<Launcher> MakeSshLauncher(const SshSpec& ssh) {
  return std::make_unique<SshLauncher>(ssh);
}

Result<std::unique_ptr<Launcher>> MakeLauncher(const ClusterSpec& spec) {
  if (spec.launcher == "local" || spec.launcher == "slurm") return MakeLocalLauncher();
  if (spec.launcher == "ssh") return MakeSshLauncher(spec.ssh);
  return InvalidArgument("launcher '" + spec.launcher +
                         "' starts no processes itself: render its manifests with `treepo "
                         "cluster render k8s FILE` and run `kubectl apply -f`");
}

}  // namespace treepo::cluster

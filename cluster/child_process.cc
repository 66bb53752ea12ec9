#include "cluster/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "common/log.h"

namespace treepo::cluster {

Result<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                         const std::string& log_path) {
  if (argv.empty()) return InvalidArgument("spawn: empty argv");
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return Unavailable("spawn: cannot open log " + log_path + ": " + std::strerror(errno));
    }
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    if (log_fd >= 0) ::close(log_fd);
    return Unavailable(std::string("spawn: fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (log_fd >= 0) ::close(log_fd);
  ChildProcess c;
  c.pid_ = pid;
  return c;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), exit_code_(other.exit_code_), term_signal_(other.term_signal_) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Terminate();
    pid_ = other.pid_;
    exit_code_ = other.exit_code_;
    term_signal_ = other.term_signal_;
    other.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() { Terminate(); }

bool ChildProcess::Running() {
  if (pid_ <= 0 || exit_code_ >= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    term_signal_ = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  } else {
    exit_code_ = 255;  // not our child any more (already reaped)
  }
  return false;
}

void ChildProcess::Signal(int sig) {
  if (Running()) ::kill(pid_, sig);
}

bool ChildProcess::Wait(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Running()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void ChildProcess::Terminate(int grace_ms) {
  if (!Running()) return;
  ::kill(pid_, SIGTERM);
  if (Wait(grace_ms)) return;
  ::kill(pid_, SIGKILL);
  Wait(10000);
}

std::string ChildProcess::ExitDescription() const {
  if (exit_code_ < 0) return "running";
  if (term_signal_ != 0) return "signal " + std::to_string(term_signal_);
  return "exit code " + std::to_string(exit_code_);
}

std::string LogTail(const std::string& path, int lines) {
  if (path.empty() || lines < 1) return "";
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  constexpr std::streamoff kMaxBytes = 64 * 1024;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size <= 0) return "";
  const std::streamoff from = std::max<std::streamoff>(0, size - kMaxBytes);
  in.seekg(from);
  std::string text(static_cast<size_t>(size - from), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  std::vector<std::string> all;
  std::istringstream ss(text);
  for (std::string line; std::getline(ss, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    all.push_back(std::move(line));
  }
  if (from > 0 && !all.empty()) all.erase(all.begin());  // a partial first line
  while (!all.empty() && all.back().empty()) all.pop_back();
  std::string out;
  const size_t first = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  for (size_t i = first; i < all.size(); ++i) out += "  | " + all[i] + "\n";
  return out;
}

void Supervisor::Add(const std::string& name, ChildProcess child, const std::string& log_path,
                     bool essential) {
  children_.push_back(Watched{name, std::move(child), log_path, essential, false});
}

std::string Supervisor::ExitMessage(Watched& w) {
  std::string msg = w.name + " exited (" + w.process.ExitDescription() + ")";
  const std::string tail = LogTail(w.log_path);
  if (!tail.empty()) {
    msg += "; last lines of " + w.log_path + ":\n" + tail;
    if (msg.back() == '\n') msg.pop_back();
  }
  return msg;
}

Status Supervisor::Check() {
  int workers_left = 0, workers = 0;
  for (Watched& w : children_) {
    const bool running = w.process.Running();
    if (!w.essential) {
      ++workers;
      if (running) ++workers_left;
    }
    if (running || w.reported) continue;
    w.reported = true;
    const std::string msg = ExitMessage(w);
    if (!w.essential) {
      spdlog::warn("{}", msg);
      exited_workers_.push_back(w.name);
    } else if (w.restart_rank >= 0) {
      spdlog::warn("{}", msg);
      exited_learners_.push_back({w.name, static_cast<uint32_t>(w.restart_rank), msg});
    } else if (error_.ok()) {
      error_ = Unavailable(msg);  // the caller reports it as the run's error
    }
  }
  if (error_.ok() && workers > 0 && workers_left == 0) {
    error_ = Unavailable("every worker process has exited (" + std::to_string(workers) + ")");
  }
  return error_;
}

std::vector<std::string> Supervisor::TakeExitedWorkers() {
  return std::exchange(exited_workers_, {});
}

void Supervisor::SetRestartable(const std::string& name, uint32_t rank) {
  for (Watched& w : children_) {
    if (w.name == name) w.restart_rank = static_cast<int>(rank);
  }
}

std::vector<Supervisor::ExitedLearner> Supervisor::TakeExitedLearners() {
  return std::exchange(exited_learners_, {});
}

bool Supervisor::Replace(const std::string& name, ChildProcess child) {
  for (Watched& w : children_) {
    if (w.name != name) continue;
    if (w.process.Running()) w.process.Terminate(1000);
    w.process = std::move(child);
    w.reported = false;
    return true;
  }
  return false;
}

scheduler::LivenessProbe SupervisorProbe(Supervisor* children) {
  return [children](scheduler::SchedulerService& service) {
    const Status st = children->Check();
    for (const std::string& name : children->TakeExitedWorkers()) service.WorkerGone(name);
    for (const Supervisor::ExitedLearner& l : children->TakeExitedLearners()) {
      // A learner that exits before it registered (a config error, a checkpoint it cannot
      // read) would only do so again: the run ends with its message instead.
      if (service.LearnerGone(l.rank, "exited: " + l.message) == 0) {
        return Unavailable(l.message + " (before it registered: not restarted)");
      }
    }
    return st;
  };
}

void Supervisor::WaitOrTerminate(const std::string& name, int timeout_ms, int grace_ms) {
  ChildProcess* c = Find(name);
  if (c != nullptr && !c->Wait(timeout_ms)) c->Terminate(grace_ms);
}

void Supervisor::WaitOrTerminateAll(int timeout_ms, int grace_ms) {
  for (Watched& w : children_) {
    if (!w.process.Wait(timeout_ms)) w.process.Terminate(grace_ms);
  }
}

std::string Supervisor::Describe(const std::string& name) {
  for (Watched& w : children_) {
    if (w.name == name) return ExitMessage(w);
  }
  return name + ": no such child";
}

ChildProcess* Supervisor::Find(const std::string& name) {
  for (Watched& w : children_) {
    if (w.name == name) return &w.process;
  }
  return nullptr;
}

std::string SelfExecutable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "treepo";
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace treepo::cluster

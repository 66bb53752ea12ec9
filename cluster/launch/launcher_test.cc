// The launchers' shell plumbing, on real processes: quoting that survives /bin/sh, the local
// launcher's detached start (its own process group, its log, its exit status), signals and
// liveness, and the process records of a run directory.
#include "cluster/launch/launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "common/atomic_file.h"
#include "common/file_io.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

class LauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("treepo_launcher_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Waits up to 10 s for `r` to be gone.
  static bool WaitGone(Launcher* l, const ProcessRecord& r) {
    for (int i = 0; i < 200; ++i) {
      Result<bool> a = l->Alive(r);
      if (a.ok() && !*a) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  fs::path dir_;
};

TEST_F(LauncherTest, ShellQuotingSurvivesTheShell) {
  const std::vector<std::string> argv = {"/bin/printf", "%s|",  "plain", "with space", "it's",
                                         "$HOME",       "a\"b", "",      "semi;colon", "*"};
  Result<CommandOutput> out = RunCommand({"/bin/sh", "-c", ShellJoin(argv)}, 10000);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->exit_code, 0);
  EXPECT_EQ(out->output, "plain|with space|it's|$HOME|a\"b||semi;colon|*|");
}

TEST_F(LauncherTest, RunCommandReportsExitCodeAndTimesOut) {
  Result<CommandOutput> out = RunCommand({"sh", "-c", "echo hi; exit 3"}, 10000);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_EQ(out->output, "hi\n");
  Result<CommandOutput> slow = RunCommand({"sleep", "30"}, 200);
  EXPECT_EQ(slow.status().code(), StatusCode::kUnavailable);
}

TEST_F(LauncherTest, LocalDetachedProcessLogsExitsAndIsSignalled) {
  std::unique_ptr<Launcher> l = MakeLocalLauncher();
  ProcessSpec spec;
  spec.name = "sleeper";
  spec.address = "127.0.0.1";
  // A child that traps nothing: SIGTERM to the group must reach it through the wrapper.
  spec.argv = {"/bin/sh", "-c", "echo started; exec sleep 60"};
  spec.log_path = (dir_ / "logs" / "sleeper.log").string();
  Result<int64_t> pid = l->StartDetached(spec);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  ProcessRecord r;
  r.name = spec.name;
  r.address = spec.address;
  r.pid = *pid;
  r.log_path = spec.log_path;
  EXPECT_EQ(::getpgid(static_cast<pid_t>(*pid)), static_cast<pid_t>(*pid))
      << "a detached process leads its own process group";
  Result<bool> alive = l->Alive(r);
  ASSERT_TRUE(alive.ok());
  EXPECT_TRUE(*alive);
  ASSERT_TRUE(l->Signal(r, SIGTERM).ok());
  ASSERT_TRUE(WaitGone(l.get(), r));
  Result<std::string> log = l->ReadLog(r);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->rfind("started\n", 0), 0u) << *log;  // the wrapper may add "Terminated"
  Result<std::string> code = ReadFileToString(spec.log_path + ".exit", "exit file");
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, "143\n");  // 128 + SIGTERM
  EXPECT_EQ(l->Signal(r, SIGTERM).code(), StatusCode::kNotFound);
}

TEST_F(LauncherTest, AStartThatFailsSaysWhy) {
  std::unique_ptr<Launcher> l = MakeLocalLauncher();
  ProcessSpec spec;
  spec.name = "w";
  spec.address = "127.0.0.1";
  spec.argv = {"/bin/true"};
  spec.log_path = "/proc/no-such-dir/w.log";  // mkdir fails
  Result<int64_t> pid = l->StartDetached(spec);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.status().message().find("starting w"), std::string::npos)
      << pid.status().ToString();
}

TEST_F(LauncherTest, ProcessRecordsRoundTrip) {
  ProcessRecord a;
  a.name = "worker-2";
  a.role = "worker";
  a.host = "h1";
  a.address = "10.0.0.2";
  a.launcher = "ssh";
  a.pid = 4242;
  a.log_path = "run/logs/worker-2.log";
  a.started_ms = 123;
  ProcessRecord b = a;
  b.name = "head";
  b.role = "head";
  ASSERT_TRUE(SaveProcessRecord(dir_.string(), a).ok());
  ASSERT_TRUE(SaveProcessRecord(dir_.string(), b).ok());
  Result<std::vector<ProcessRecord>> rs = LoadProcessRecords(dir_.string());
  ASSERT_TRUE(rs.ok()) << rs.status().ToString();
  ASSERT_EQ(rs->size(), 2u);
  EXPECT_EQ((*rs)[0].name, "head");
  const ProcessRecord& w = (*rs)[1];
  EXPECT_EQ(w.address, "10.0.0.2");
  EXPECT_EQ(w.launcher, "ssh");
  EXPECT_EQ(w.pid, 4242);
  EXPECT_EQ(w.log_path, "run/logs/worker-2.log");
  ASSERT_TRUE(RemoveProcessRecord(dir_.string(), "head").ok());
  EXPECT_EQ(LoadProcessRecords(dir_.string())->size(), 1u);
  ASSERT_TRUE(WriteFileAtomically((dir_ / "procs" / "bad.json").string(), "{").ok());
  EXPECT_EQ(LoadProcessRecords(dir_.string()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::cluster

// Supervisor and LogTail on real child processes (/bin/sh): an essential child's exit ends the
// run with its status and log tail, a worker's exit is only logged while another is left, the
// last worker's exit is an error, and children still running are terminated.
#include "cluster/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/testing/paths.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

// Calls Check() until it fails or `ms` pass; its last status.
Status CheckUntilError(Supervisor& s, int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  Status st = s.Check();
  while (st.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    st = s.Check();
  }
  return st;
}

ChildProcess Sh(const std::string& script, const std::string& log) {
  Result<ChildProcess> c = ChildProcess::Spawn({"/bin/sh", "-c", script}, log);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return std::move(*c);
}

TEST(LogTailTest, LastLinesPrefixed) {
  const std::string dir = testing::FreshTempDir("log_tail");
  const std::string path = dir + "/a.log";
  {
    std::ofstream out(path);
    for (int i = 1; i <= 30; ++i) out << "line " << i << "\n";
  }
  EXPECT_EQ(LogTail(path, 2), "  | line 29\n  | line 30\n");
  EXPECT_EQ(LogTail(dir + "/missing.log", 2), "");
  EXPECT_EQ(LogTail("", 2), "");
  fs::remove_all(dir);
}

TEST(SupervisorTest, AnEssentialChildsExitIsTheErrorWithItsLogTail) {
  const std::string dir = testing::FreshTempDir("supervisor_essential");
  Supervisor s;
  s.Add("worker-1", Sh("exec sleep 30", dir + "/w.log"), dir + "/w.log", false);
  s.Add("learner", Sh("echo 'unknown estimator nope'; exit 3", dir + "/l.log"), dir + "/l.log",
        true);
  const Status st = CheckUntilError(s, 10000);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("learner exited (exit code 3)"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("unknown estimator nope"), std::string::npos) << st.message();
  EXPECT_EQ(s.Check().code(), StatusCode::kUnavailable);  // sticky
  // The worker still runs; it is terminated (and reaped) without waiting its 30 s.
  const auto start = std::chrono::steady_clock::now();
  s.WaitOrTerminateAll(0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(s.Find("worker-1")->term_signal(), SIGTERM);
  fs::remove_all(dir);
}

TEST(SupervisorTest, AWorkerMayGoWhileAnotherIsLeftButNotTheLast) {
  Supervisor s;
  s.Add("worker-1", Sh("kill -9 $$", ""), "", false);
  s.Add("worker-2", Sh("exec sleep 30", ""), "", false);
  // worker-1 dies of SIGKILL: reported, not an error.
  ASSERT_TRUE(s.Find("worker-1")->Wait(10000));
  EXPECT_TRUE(s.Check().ok());
  EXPECT_EQ(s.Find("worker-1")->ExitDescription(), "signal 9");
  s.Find("worker-2")->Signal(SIGKILL);
  const Status st = CheckUntilError(s, 10000);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("every worker"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace treepo::cluster

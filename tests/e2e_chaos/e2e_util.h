// Helpers of the fault tests: read a file, wait (bounded) for text in a log, find a child
// process of a running command by its arguments. Header-only; tests only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace treepo::testing {

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The tree file `train` writes for RL step `step` under its out_dir `out`.
inline std::string StepTreesPath(const std::string& out, int step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%06d.jsonl", step);
  return out + "/trees/" + name;
}

inline int CountOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// Waits until `done()` holds or `ms` pass (polling every 10 ms); true when it held.
template <typename F>
bool WaitFor(F done, int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Waits until the file at `path` holds `needle` at least `count` times.
inline bool WaitForText(const std::string& path, const std::string& needle, int ms, int count = 1) {
  return WaitFor([&] { return CountOf(ReadAll(path), needle) >= count; }, ms);
}

// The pid of a child of `parent` whose command line holds every one of `args`, or -1.
inline pid_t FindChild(pid_t parent, const std::vector<std::string>& args) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    // /proc/N/stat: "pid (comm) state ppid ..."; comm may hold spaces, so parse after ')'.
    const std::string stat = ReadAll(e.path().string() + "/stat");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    pid_t ppid = -1;
    rest >> state >> ppid;
    if (ppid != parent) continue;
    std::string cmdline = ReadAll(e.path().string() + "/cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    cmdline = " " + cmdline;
    bool all = true;
    for (const std::string& a : args) all = all && cmdline.find(" " + a + " ") != std::string::npos;
    if (all) return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

}  // namespace treepo::testing

// A one-line progress bar on stderr: "[#####.....] 12/40 queries  3.1 q/s  eta 9s  <status>".
// Redraws in place on a terminal; elsewhere prints a plain line at most every 10% (so logs
// and CI output stay readable). Owned by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace treepo {

class ProgressBar {
 public:
  ProgressBar(std::string unit, int64_t total, bool enabled = true);
  // Sets the count done and a short free-form status, and redraws if due.
  void Update(int64_t done, const std::string& status = "");
  // Draws the final state and ends the line.
  void Finish(const std::string& status = "");

 private:
  void Draw(bool final);

  std::string unit_;
  int64_t total_;
  int64_t done_ = 0;
  bool enabled_;
  bool tty_;
  int last_decile_ = -1;
  std::string status_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace treepo

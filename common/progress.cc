#include "common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace treepo {

ProgressBar::ProgressBar(std::string unit, int64_t total, bool enabled)
    : unit_(std::move(unit)),
      total_(std::max<int64_t>(total, 1)),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void ProgressBar::Update(int64_t done, const std::string& status) {
  done_ = done;
  status_ = status;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    const int decile = static_cast<int>(10 * done_ / total_);
    if (decile == last_decile_) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  Draw(false);
}

void ProgressBar::Finish(const std::string& status) {
  if (!status.empty()) status_ = status;
  if (enabled_) Draw(true);
}

void ProgressBar::Draw(bool final) {
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? done_ / secs : 0.0;
  const double eta = rate > 0 ? (total_ - done_) / rate : 0.0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(kWidth * std::min<int64_t>(done_, total_) / total_);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  std::fprintf(stderr, "%s[%s] %lld/%lld %s  %.1f/s  %s %.0fs  %s%s", tty_ ? "\r\033[K" : "",
               bar.c_str(), static_cast<long long>(done_), static_cast<long long>(total_),
               unit_.c_str(), rate, final ? "took" : "eta", final ? secs : eta, status_.c_str(),
               (final || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace treepo

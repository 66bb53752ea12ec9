// Milliseconds of the monotonic clock, for timeouts and heartbeats.
#pragma once

#include <chrono>
#include <cstdint>

namespace treepo {

inline int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace treepo

// The range of the sampling parameters, checked where they are loaded (rollout, train, eval,
// generate options) so that a bad value is refused at start with its name instead of being
// refused later by every worker, task by task.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace treepo {

// temperature finite and >= 0 (0 = greedy); top_p in (0, 1]; top_k >= 0 (0 = off).
// `prefix` starts each message ("rollout." for keys under [rollout]).
inline Status CheckSamplingParams(double temperature, double top_p, int64_t top_k,
                                  std::string_view prefix = "") {
  const std::string p(prefix);
  if (!std::isfinite(temperature) || temperature < 0) {
    return InvalidArgument(p + "temperature must be a finite number >= 0, got " +
                           std::to_string(temperature));
  }
  if (!(top_p > 0 && top_p <= 1)) {
    return InvalidArgument(p + "top_p must be in (0, 1], got " + std::to_string(top_p));
  }
  if (top_k < 0) return InvalidArgument(p + "top_k must be >= 0, got " + std::to_string(top_k));
  return OkStatus();
}

}  // namespace treepo

#include "common/memory_budget.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace treepo {

uint64_t MemoryLimitBytes() {
  if (const char* env = std::getenv("TREEPO_MEMORY_LIMIT_BYTES"); env && *env) {
    uint64_t v = 0;
    const char* end = env + std::strlen(env);
    auto [p, ec] = std::from_chars(env, end, v);
    if (ec == std::errc() && p == end && v > 0) return v;
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return UINT64_MAX;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

std::string FormatBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 6) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

Status CheckMemoryBudget(double bytes, std::string_view what) {
  const uint64_t limit = MemoryLimitBytes();
  if (bytes <= static_cast<double>(limit)) return OkStatus();
  const bool env = std::getenv("TREEPO_MEMORY_LIMIT_BYTES") != nullptr;
  return ResourceExhausted(std::string(what) + " needs " + FormatBytes(bytes) + ", more than " +
                           (env ? "the TREEPO_MEMORY_LIMIT_BYTES cap" : "this machine's memory") +
                           " (" + FormatBytes(static_cast<double>(limit)) + ")");
}

}  // namespace treepo

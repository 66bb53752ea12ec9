// `treepo top`: the dashboard's cluster table in a terminal, refreshed (docs/dashboard.md).
// It reads GET /api/cluster of a running scheduler's dashboard, so it works from any machine
// that reaches the dashboard's port (a login node, through an ssh tunnel).
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace treepo::scheduler::dashboard {

struct TopOptions {
  std::string url;           // the dashboard's base URL, "http://127.0.0.1:40123/"
  std::string token;         // dashboard.token, if the dashboard has one
  int interval_ms = 1000;    // refresh period (>= 100)
  int iterations = 0;        // tables to print, 0 = until stopped
  int timeout_ms = 5000;     // for each request
  bool clear_screen = true;  // redraw in place (a terminal); false: print one table after another

  Status Validate() const;
};

// The table for one /api/cluster document: a header line (run, uptime, step, reward, queue,
// tasks/s), one row per worker (state, weight version, KV use bar, tasks/s, tokens/s, last
// heartbeat), the learners, and the latest events. Lines fit in `width` columns.
std::string FormatClusterTable(const nlohmann::json& cluster, int width);

// Prints tables until *stop (may be null) or `iterations`. A dashboard that stops answering
// ends it with kUnavailable after the first table (the run is over) or at once.
Status RunTop(const TopOptions& options, const std::atomic<bool>* stop);

}  // namespace treepo::scheduler::dashboard

// The Prometheus text exposition format (version 0.0.4) of a snapshot: what GET /metrics
// serves. Every family has # HELP and # TYPE lines; units are in the names (_seconds, _bytes,
// _ratio) and counters end in _total. Per-worker series carry the labels worker="name" and
// id="N" (a restarted worker is a new id). docs/dashboard.md lists the families.
#pragma once

#include <string>
#include <string_view>

#include "scheduler/dashboard/snapshot.h"

namespace treepo::scheduler::dashboard {

std::string PrometheusText(const DashboardSnapshot& snapshot);

// A label value escaped as the format requires (backslash, double quote, newline).
std::string EscapeLabelValue(std::string_view value);

}  // namespace treepo::scheduler::dashboard

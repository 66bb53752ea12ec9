// The JSON documents of the dashboard's API (docs/dashboard.md describes each field):
//   GET /api/cluster          ClusterJson
//   GET /api/queries          QueriesJson
//   GET /api/trees/{key}      TreeJson
//   GET /api/metrics?since=N  MetricsJson: metric lines N.. of the run, and the next cursor
//   /ws                       DeltaJson, pushed to each WebSocket client
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scheduler/dashboard/snapshot.h"

namespace treepo::scheduler::dashboard {

// Decodes token ids to text (the run's tokenizer); null: live nodes show no text.
using TokenDecoder = std::function<std::string(const std::vector<int32_t>&)>;

nlohmann::json ClusterJson(const DashboardSnapshot& s);
nlohmann::json QueriesJson(const DashboardSnapshot& s);
// Summary of one tree (what QueriesJson lists).
nlohmann::json TreeSummaryJson(const TreeView& t);
// The whole tree with every node's text; nullptr-safe decoder.
nlohmann::json TreeJson(const TreeView& t, const TokenDecoder& decode);
// Lines [since, end) of the run's metric lines and "next" = end. since past the end: none.
nlohmann::json MetricsJson(const DashboardSnapshot& s, size_t since);
// What changed after snapshot `since_seq` (0: everything): the cluster document, new events,
// new metric lines, and for each tree changed since, its summary and the nodes changed since
// (no text; /api/trees/{key} has it). Trees that left the snapshot are listed in "removed".
nlohmann::json DeltaJson(const DashboardSnapshot& s, uint64_t since_seq,
                         const std::vector<uint64_t>& known_trees);

// The tree with `key` in the snapshot, or null.
const TreeView* FindTree(const DashboardSnapshot& s, uint64_t key);

}  // namespace treepo::scheduler::dashboard

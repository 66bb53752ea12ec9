// The dashboard page's static files, embedded in the binary at build time
// (scheduler/dashboard/embed_assets.cmake): the page (web/) and the charting library (uPlot,
// from npm through scripts/setup_dashboard_assets.sh and its lock file). No file is read at
// run time and nothing is fetched from a network: the page works offline.
#pragma once

#include <string_view>
#include <vector>

namespace treepo::scheduler::dashboard {

struct Asset {
  std::string_view path;          // URL path, "/app.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
};

// Every embedded file; "/" is the page itself.
const std::vector<Asset>& EmbeddedAssets();

}  // namespace treepo::scheduler::dashboard

// The scheduler's dashboard (docs/dashboard.md): a snapshot recorder on the loop thread, a
// publisher, and the HTTP/WebSocket server on its own thread. The RL loop (and a rollout job
// when asked) starts one and attaches its recorder to the service and the rollouts:
//
//   auto d = Dashboard::Start(options, decoder, "train");
//   service->set_loop_observer(&(*d)->recorder());    // one publish check per loop turn
//   run_options.observer = &(*d)->recorder();          // trees as they grow
//
// Thread-safety: Start, recorder() and the destructor on the loop thread.
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "common/status.h"
#include "scheduler/dashboard/http_server.h"
#include "scheduler/dashboard/publisher.h"
#include "scheduler/dashboard/recorder.h"

namespace treepo::scheduler::dashboard {

// Keys under "dashboard." (LoadDashboardOptions).
struct DashboardOptions {
  bool enabled = false;              // dashboard.enabled (`treepo train` turns it on)
  std::string bind = "127.0.0.1:0";  // dashboard.bind: host:port; port 0 = a free one
  // dashboard.token: required on every request when set; required to bind a non-loopback
  // address (anyone who reaches the port would otherwise read the run's prompts and outputs).
  std::string token;
  int publish_interval_ms = 250;  // dashboard.publish_interval_ms: snapshot period (loop time)
  int push_interval_ms = 500;     // dashboard.push_interval_ms: WebSocket delta period
  int finished_trees = 64;        // dashboard.finished_trees: finished trees kept to browse
  int max_events = 500;           // dashboard.max_events: events kept
  int max_connections = 64;       // dashboard.max_connections
  // Not a key: where to write the URL when started ("" = nowhere; `treepo top --run` reads it).
  std::string url_file;

  Status Validate() const;
};

// Reads dashboard.* from `config` (absent keys keep their value).
Status LoadDashboardOptions(const Config& config, DashboardOptions* options);

// The file in a run's out_dir that holds the dashboard's URL while it runs.
inline constexpr const char* kDashboardUrlFile = "dashboard_url";

class Dashboard {
 public:
  // Starts serving (options.enabled is not consulted). `decode` may be null.
  static Result<std::unique_ptr<Dashboard>> Start(const DashboardOptions& options,
                                                  TokenDecoder decode, std::string run_name);
  // Stops the server and removes the URL file.
  ~Dashboard();

  SnapshotRecorder& recorder() { return recorder_; }
  const SnapshotPublisher& publisher() const { return publisher_; }
  std::string url() const { return server_->url(); }

 private:
  Dashboard(const DashboardOptions& options, std::string run_name);

  DashboardOptions options_;
  SnapshotPublisher publisher_;
  SnapshotRecorder recorder_;
  std::unique_ptr<HttpServer> server_;  // destroyed first: it reads publisher_
};

}  // namespace treepo::scheduler::dashboard

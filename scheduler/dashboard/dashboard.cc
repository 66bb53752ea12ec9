#include "scheduler/dashboard/dashboard.h"

#include <filesystem>

#include "common/atomic_file.h"
#include "common/log.h"

namespace treepo::scheduler::dashboard {
namespace {

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

RecorderOptions RecorderOptionsFrom(const DashboardOptions& o, std::string run_name) {
  RecorderOptions r;
  r.publish_interval_ms = o.publish_interval_ms;
  r.finished_trees = o.finished_trees;
  r.max_events = o.max_events;
  r.run_name = std::move(run_name);
  return r;
}

}  // namespace

Status DashboardOptions::Validate() const {
  std::string host;
  int port = 0;
  TREEPO_RETURN_IF_ERROR(ParseBind(bind, "dashboard.bind", &host, &port));
  if (!IsLoopback(host) && token.empty()) {
    return InvalidArgument("dashboard.bind = '" + bind +
                           "' is not a loopback address: set dashboard.token (every request "
                           "must then carry it), or bind 127.0.0.1 and tunnel");
  }
  if (publish_interval_ms < 1) return InvalidArgument("dashboard.publish_interval_ms must be >= 1");
  if (push_interval_ms < 10) return InvalidArgument("dashboard.push_interval_ms must be >= 10");
  if (finished_trees < 0) return InvalidArgument("dashboard.finished_trees must be >= 0");
  if (max_events < 1) return InvalidArgument("dashboard.max_events must be >= 1");
  if (max_connections < 1) return InvalidArgument("dashboard.max_connections must be >= 1");
  return OkStatus();
}

Status LoadDashboardOptions(const Config& c, DashboardOptions* o) {
  TREEPO_RETURN_IF_ERROR(c.Get("dashboard.enabled", &o->enabled));
  TREEPO_RETURN_IF_ERROR(c.Get("dashboard.bind", &o->bind));
  TREEPO_RETURN_IF_ERROR(c.Get("dashboard.token", &o->token));
  TREEPO_RETURN_IF_ERROR(c.Get("dashboard.publish_interval_ms", &o->publish_interval_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("dashboard.push_interval_ms", &o->push_interval_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("dashboard.finished_trees", &o->finished_trees));
  TREEPO_RETURN_IF_ERROR(c.Get("dashboard.max_events", &o->max_events));
  TREEPO_RETURN_IF_ERROR(c.Get("dashboard.max_connections", &o->max_connections));
  return OkStatus();
}

Dashboard::Dashboard(const DashboardOptions& options, std::string run_name)
    : options_(options),
      recorder_(RecorderOptionsFrom(options, std::move(run_name)), &publisher_) {}

Dashboard::~Dashboard() {
  server_.reset();
  if (!options_.url_file.empty()) {
    std::error_code ec;
    std::filesystem::remove(options_.url_file, ec);
  }
}

Result<std::unique_ptr<Dashboard>> Dashboard::Start(const DashboardOptions& options,
                                                    TokenDecoder decode, std::string run_name) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<Dashboard> d(new Dashboard(options, std::move(run_name)));
  HttpServerOptions so;
  so.bind = options.bind;
  so.push_interval_ms = options.push_interval_ms;
  so.max_connections = options.max_connections;
  auto routes = std::make_shared<const Routes>(&d->publisher_, options.token, std::move(decode));
  TREEPO_ASSIGN_OR_RETURN(d->server_, HttpServer::Start(so, std::move(routes), &d->publisher_));
  if (!options.url_file.empty()) {
    TREEPO_RETURN_IF_ERROR(WriteFileAtomically(options.url_file, d->url() + "\n"));
  }
  spdlog::info("dashboard: {}{}", d->url(),
               options.token.empty() ? "" : "?token=<dashboard.token>");
  return d;
}

}  // namespace treepo::scheduler::dashboard

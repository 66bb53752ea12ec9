// What the dashboard's HTTP server answers, as a pure function of the request and the latest
// snapshot, so that it is tested without sockets (routes_test.cc).
//
//   GET /                    the page (embedded assets), GET /<asset>
//   GET /metrics             Prometheus text exposition (exposition.h)
//   GET /api/cluster, /api/queries, /api/trees/{key}, /api/metrics?since=N   (api_json.h)
//   GET /healthz             "ok"
// With a token configured every request must carry it: "Authorization: Bearer <token>", the
// query parameter token=<token>, or the cookie the server sets when a page is opened with the
// query parameter. Anything else: 401. Methods other than GET/HEAD: 405.
//
// Thread-safety: Handle is const and may run on any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/dashboard/api_json.h"
#include "scheduler/dashboard/publisher.h"

namespace treepo::scheduler::dashboard {

struct HttpRequestView {
  std::string method;         // "GET"
  std::string target;         // "/api/trees/3?x=y"
  std::string authorization;  // the Authorization header, "" if none
  std::string cookie;         // the Cookie header, "" if none
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

class Routes {
 public:
  // `publisher` outlives the routes. `token` "": no access control.
  Routes(const SnapshotPublisher* publisher, std::string token, TokenDecoder decode);

  HttpReply Handle(const HttpRequestView& request) const;
  // The request carries the token (always true without one).
  bool Authorized(const HttpRequestView& request) const;
  // The path of a target, without its query string.
  static std::string_view Path(std::string_view target);
  // The value of query parameter `name` in `target` (percent-decoded), "" if absent.
  static std::string QueryParam(std::string_view target, std::string_view name);

 private:
  HttpReply Api(std::string_view path, std::string_view target,
                const DashboardSnapshot& snapshot) const;

  const SnapshotPublisher* publisher_;
  std::string token_;
  TokenDecoder decode_;
};

}  // namespace treepo::scheduler::dashboard

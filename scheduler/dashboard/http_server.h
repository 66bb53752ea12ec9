// The dashboard's HTTP + WebSocket server (Boost.Beast on Boost.Asio), on a thread of its own.
// It serves Routes for plain requests and, on /ws, a WebSocket that pushes DeltaJson every
// push_interval_ms while the snapshot changes (each client remembers what it was sent). It
// reads only the SnapshotPublisher: it never touches the scheduler's loop state, and the
// loop never waits for it.
//
// Limits: max_connections open connections (more are closed at once), requests of 16 KiB
// headers and no body, 30 s to send a request, WebSocket pings per Beast's server defaults.
//
// Thread-safety: Start and the destructor on the owner's thread; the server's own work on its
// thread.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "scheduler/dashboard/publisher.h"
#include "scheduler/dashboard/routes.h"

namespace treepo::scheduler::dashboard {

struct HttpServerOptions {
  std::string bind = "127.0.0.1:0";  // host:port; port 0: a free one
  int push_interval_ms = 500;        // WebSocket deltas at most this often (>= 10)
  int max_connections = 64;
};

class HttpServer {
 public:
  // Binds and starts serving. kInvalidArgument for a bad bind string, kUnavailable when the
  // address cannot be bound (in use, not local).
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                   std::shared_ptr<const Routes> routes,
                                                   const SnapshotPublisher* publisher);
  // Stops accepting, closes every connection, joins the thread.
  ~HttpServer();

  int port() const;
  // "http://127.0.0.1:40123/"
  std::string url() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" ("[::1]:80" for IPv6). kInvalidArgument naming `key` when malformed.
Status ParseBind(const std::string& bind, const std::string& key, std::string* host, int* port);

}  // namespace treepo::scheduler::dashboard

#include "scheduler/dashboard/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <charconv>
#include <chrono>
#include <optional>
#include <thread>
#include <unordered_set>

#include "common/log.h"

namespace treepo::scheduler::dashboard {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

constexpr auto kRequestTimeout = std::chrono::seconds(30);

struct Shared {
  HttpServerOptions options;
  std::shared_ptr<const Routes> routes;
  const SnapshotPublisher* publisher = nullptr;
  int connections = 0;  // open connections; only touched on the server thread
};

// One WebSocket client: pushes a delta whenever a newer snapshot exists, at most every
// push_interval_ms. Reads (and discards) what the client sends, so that close frames and
// pings are handled.
class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(tcp::socket socket, Shared* shared)
      : ws_(std::move(socket)), timer_(ws_.get_executor()), shared_(shared) {
    ++shared_->connections;
  }
  ~WsSession() { --shared_->connections; }

  void Run(http::request<http::string_body> request) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.async_accept(request, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->Read();
      self->Push();
    });
  }

 private:
  void Read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        self->closed_ = true;
        self->timer_.cancel();
        return;
      }
      self->in_.consume(self->in_.size());
      self->Read();
    });
  }

  void Push() {
    if (closed_) return;
    const std::shared_ptr<const DashboardSnapshot> s = shared_->publisher->Latest();
    if (!s || s->seq <= sent_seq_) return Wait();
    nlohmann::json delta = DeltaJson(*s, sent_seq_, known_trees_);
    known_trees_.clear();
    for (const auto& t : s->trees) known_trees_.push_back(t->key);
    sent_seq_ = s->seq;
    out_ = delta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    ws_.text(true);
    ws_.async_write(net::buffer(out_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        self->closed_ = true;
        return;
      }
      self->Wait();
    });
  }

  // The next push is due push_interval_ms after the previous one was due (not after it was
  // written), so a slow write does not stretch the period; a client that falls behind a whole
  // period is pushed to at once.
  void Wait() {
    const auto now = std::chrono::steady_clock::now();
    const auto period = std::chrono::milliseconds(shared_->options.push_interval_ms);
    next_push_ = next_push_.time_since_epoch().count() == 0 ? now + period : next_push_ + period;
    if (next_push_ < now) next_push_ = now;
    timer_.expires_at(next_push_);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->Push();
    });
  }

  websocket::stream<beast::tcp_stream> ws_;
  net::steady_timer timer_;
  Shared* shared_;
  beast::flat_buffer in_;
  std::string out_;
  uint64_t sent_seq_ = 0;
  std::chrono::steady_clock::time_point next_push_{};
  std::vector<uint64_t> known_trees_;
  bool closed_ = false;
};

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, Shared* shared) : stream_(std::move(socket)), shared_(shared) {
    ++shared_->connections;
  }
  ~HttpSession() { --shared_->connections; }

  void Read() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(0);
    stream_.expires_after(kRequestTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) {
      // A request over the limits gets an answer; a closed or silent connection does not.
      if (ec == http::error::body_limit || ec == http::error::header_limit) {
        HttpReply r;
        r.status = 413;
        r.body = R"({"error":"request too large"})";
        Write(std::move(r), false, false);
        return;
      }
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      return;
    }
    http::request<http::string_body> req = parser_->release();
    HttpRequestView view;
    view.method = std::string(req.method_string());
    view.target = std::string(req.target());
    if (auto it = req.find(http::field::authorization); it != req.end()) {
      view.authorization = std::string(it->value());
    }
    if (auto it = req.find(http::field::cookie); it != req.end()) {
      view.cookie = std::string(it->value());
    }
    if (websocket::is_upgrade(req)) {
      if (Routes::Path(view.target) != "/ws") {
        Write(HttpReply{404, "application/json", R"({"error":"WebSocket only on /ws"})", {}}, false,
              false);
        return;
      }
      if (!shared_->routes->Authorized(view)) {
        Write(HttpReply{401, "application/json", R"({"error":"token required"})", {}}, false,
              false);
        return;
      }
      stream_.expires_never();
      std::make_shared<WsSession>(stream_.release_socket(), shared_)->Run(std::move(req));
      return;
    }
    const bool head = req.method() == http::verb::head;
    Write(shared_->routes->Handle(view), req.keep_alive(), head);
  }

  void Write(HttpReply reply, bool keep_alive, bool head) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(reply.status));
    res->set(http::field::server, "treepo-dashboard");
    res->set(http::field::content_type, reply.content_type);
    res->set(http::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    for (const auto& [k, v] : reply.headers) res->set(k, v);
    res->keep_alive(keep_alive);
    if (head) {
      res->content_length(reply.body.size());
    } else {
      res->body() = std::move(reply.body);
      res->prepare_payload();
    }
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                        if (ec) return;
                        if (!keep_alive) {
                          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
                          return;
                        }
                        self->Read();
                      });
  }

  beast::tcp_stream stream_;
  Shared* shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl() : ioc_(1), acceptor_(ioc_) {}

  Status Bind(const std::string& host, int port) {
    beast::error_code ec;
    const net::ip::address address =
        net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) return InvalidArgument("dashboard.bind: '" + host + "' is not an IP address");
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable("dashboard.bind " + host + ":" + std::to_string(port) +
                         ": cannot listen: " + ec.message() + " (port 0 picks a free one)");
    }
    port_ = acceptor_.local_endpoint().port();
    host_ = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    if (address.is_unspecified()) host_ = "127.0.0.1";
    return OkStatus();
  }

  void Run() {
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }

  void Stop() {
    net::post(ioc_, [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      ioc_.stop();
    });
    if (thread_.joinable()) thread_.join();
  }

  Shared shared_;
  int port_ = 0;
  std::string host_;

 private:
  void Accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        if (shared_.connections >= shared_.options.max_connections) {
          beast::error_code ignored;
          s.close(ignored);
        } else {
          std::make_shared<HttpSession>(std::move(s), &shared_)->Read();
        }
      }
      Accept();
    });
  }

  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

Status ParseBind(const std::string& bind, const std::string& key, std::string* host, int* port) {
  const size_t colon = bind.rfind(':');
  if (colon == std::string::npos || colon + 1 == bind.size()) {
    return InvalidArgument(key + " = '" + bind + "': expected host:port (e.g. 127.0.0.1:8470)");
  }
  std::string h = bind.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  const std::string p = bind.substr(colon + 1);
  int v = -1;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (ec != std::errc() || end != p.data() + p.size() || v < 0 || v > 65535 || h.empty()) {
    return InvalidArgument(key + " = '" + bind + "': expected host:port with port 0..65535");
  }
  *host = h;
  *port = v;
  return OkStatus();
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { impl_->Stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      std::shared_ptr<const Routes> routes,
                                                      const SnapshotPublisher* publisher) {
  if (options.push_interval_ms < 10) {
    return InvalidArgument("dashboard.push_interval_ms must be >= 10");
  }
  if (options.max_connections < 1) return InvalidArgument("dashboard.max_connections must be >= 1");
  std::string host;
  int port = 0;
  TREEPO_RETURN_IF_ERROR(ParseBind(options.bind, "dashboard.bind", &host, &port));
  auto impl = std::make_unique<Impl>();
  impl->shared_.options = options;
  impl->shared_.routes = std::move(routes);
  impl->shared_.publisher = publisher;
  TREEPO_RETURN_IF_ERROR(impl->Bind(host, port));
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port_; }

std::string HttpServer::url() const {
  return "http://" + impl_->host_ + ":" + std::to_string(impl_->port_) + "/";
}

}  // namespace treepo::scheduler::dashboard

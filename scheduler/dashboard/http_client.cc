#include "scheduler/dashboard/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

#include "scheduler/dashboard/http_server.h"

namespace treepo::scheduler::dashboard {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

Result<HttpResponse> HttpGet(const std::string& url, const std::string& token, int timeout_ms) {
  constexpr std::string_view kScheme = "http://";
  if (url.compare(0, kScheme.size(), kScheme) != 0) {
    return InvalidArgument("dashboard URL '" + url + "' does not start with http://");
  }
  const std::string rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  const std::string hostport = rest.substr(0, slash);
  const std::string target = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string host;
  int port = 0;
  TREEPO_RETURN_IF_ERROR(ParseBind(hostport, "dashboard URL", &host, &port));
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec) return Unavailable("cannot resolve " + host + ": " + ec.message());
  HttpResponse out;
  bool done = false;
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, hostport);
  req.set(http::field::user_agent, "treepo");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64ull << 20);
  stream.expires_after(std::chrono::milliseconds(timeout_ms));
  beast::error_code result;
  stream.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
    if (e) {
      result = e;
      return;
    }
    http::async_write(stream, req, [&](beast::error_code e2, size_t) {
      if (e2) {
        result = e2;
        return;
      }
      http::async_read(stream, buffer, parser, [&](beast::error_code e3, size_t) {
        result = e3;
        done = !e3;
      });
    });
  });
  ioc.run();
  if (!done) {
    if (result == beast::error::timeout) {
      return DeadlineExceeded("no answer from " + url + " within " + std::to_string(timeout_ms) +
                              " ms");
    }
    return Unavailable("GET " + url + ": " + result.message());
  }
  const auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  if (auto it = res.find(http::field::content_type); it != res.end()) {
    out.content_type = std::string(it->value());
  }
  out.body = res.body();
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return out;
}

}  // namespace treepo::scheduler::dashboard

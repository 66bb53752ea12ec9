// A small synchronous HTTP/1.1 GET client (Boost.Beast) for `treepo top` and the tests: one
// request per connection, a deadline for the whole exchange.
#pragma once

#include <string>

#include "common/status.h"

namespace treepo::scheduler::dashboard {

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// GETs `url` ("http://host:port/path?query"). `token` non-empty: sent as a Bearer token.
// kInvalidArgument for a URL that is not http://host:port/..., kUnavailable when the server
// cannot be reached, kDeadlineExceeded after timeout_ms.
Result<HttpResponse> HttpGet(const std::string& url, const std::string& token, int timeout_ms);

}  // namespace treepo::scheduler::dashboard

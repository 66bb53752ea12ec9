#include "scheduler/dashboard/routes.h"

#include <charconv>

#include "scheduler/dashboard/assets.h"
#include "scheduler/dashboard/exposition.h"

namespace treepo::scheduler::dashboard {
namespace {

constexpr std::string_view kCookieName = "treepo_dashboard_token";

HttpReply Json(const nlohmann::json& j, int status = 200) {
  HttpReply r;
  r.status = status;
  // Replace invalid UTF-8 (token text of a partial character) rather than throw.
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

HttpReply Error(int status, const std::string& message) {
  return Json({{"error", message}}, status);
}

// Constant-time comparison: the token is a secret.
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string CookieValue(std::string_view header, std::string_view name) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view part = header.substr(pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    pos = end + 1;
  }
  return "";
}

// A non-negative decimal, or -1.
int64_t ParseCount(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return -1;
  return v;
}

}  // namespace

Routes::Routes(const SnapshotPublisher* publisher, std::string token, TokenDecoder decode)
    : publisher_(publisher), token_(std::move(token)), decode_(std::move(decode)) {}

std::string_view Routes::Path(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::string Routes::QueryParam(std::string_view target, std::string_view name) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view query = target.substr(q + 1);
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    std::string_view kv = query.substr(pos, end - pos);
    const size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name) {
      return eq == std::string_view::npos ? "" : PercentDecode(kv.substr(eq + 1));
    }
    pos = end + 1;
  }
  return "";
}

bool Routes::Authorized(const HttpRequestView& r) const {
  if (token_.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  if (r.authorization.size() > kBearer.size() &&
      r.authorization.compare(0, kBearer.size(), kBearer) == 0 &&
      SameSecret(std::string_view(r.authorization).substr(kBearer.size()), token_)) {
    return true;
  }
  if (SameSecret(QueryParam(r.target, "token"), token_)) return true;
  return SameSecret(CookieValue(r.cookie, kCookieName), token_);
}

HttpReply Routes::Handle(const HttpRequestView& r) const {
  if (r.method != "GET" && r.method != "HEAD") {
    HttpReply e = Error(405, "method " + r.method + " not allowed: the dashboard is read-only");
    e.headers.emplace_back("Allow", "GET, HEAD");
    return e;
  }
  if (!Authorized(r)) {
    return Error(401,
                 "this dashboard needs its access token (dashboard.token): open it with "
                 "?token=<token> or send \"Authorization: Bearer <token>\"");
  }
  const std::string_view path = Path(r.target);
  if (path == "/healthz") {
    HttpReply ok;
    ok.content_type = "text/plain; charset=utf-8";
    ok.body = "ok\n";
    return ok;
  }
  for (const Asset& a : EmbeddedAssets()) {
    if (a.path != path) continue;
    HttpReply reply;
    reply.content_type = std::string(a.content_type);
    reply.body = std::string(a.body);
    // A page opened with ?token= keeps it in a cookie for its scripts' requests.
    if (!token_.empty() && !QueryParam(r.target, "token").empty()) {
      reply.headers.emplace_back("Set-Cookie", std::string(kCookieName) + "=" + token_ +
                                                   "; Path=/; HttpOnly; SameSite=Strict");
    }
    return reply;
  }
  const std::shared_ptr<const DashboardSnapshot> snapshot = publisher_->Latest();
  if (path == "/metrics" || path.substr(0, 5) == "/api/") {
    if (!snapshot) return Error(503, "no snapshot published yet: the scheduler is starting");
    if (path == "/metrics") {
      HttpReply reply;
      reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
      reply.body = PrometheusText(*snapshot);
      return reply;
    }
    return Api(path, r.target, *snapshot);
  }
  return Error(404, "no such page: " + std::string(path));
}

HttpReply Routes::Api(std::string_view path, std::string_view target,
                      const DashboardSnapshot& s) const {
  if (path == "/api/cluster") return Json(ClusterJson(s));
  if (path == "/api/queries") return Json(QueriesJson(s));
  if (path == "/api/metrics") {
    const std::string since = QueryParam(target, "since");
    const int64_t n = since.empty() ? 0 : ParseCount(since);
    if (n < 0) return Error(400, "since must be a non-negative integer, got '" + since + "'");
    return Json(MetricsJson(s, static_cast<size_t>(n)));
  }
  constexpr std::string_view kTrees = "/api/trees/";
  if (path.substr(0, kTrees.size()) == kTrees) {
    const std::string_view key = path.substr(kTrees.size());
    const int64_t k = ParseCount(key);
    if (k <= 0)
      return Error(400, "tree key must be a positive integer, got '" + std::string(key) + "'");
    const TreeView* t = FindTree(s, static_cast<uint64_t>(k));
    if (t == nullptr) {
      return Error(404, "no tree " + std::string(key) +
                            " (finished trees are kept for dashboard.finished_trees queries)");
    }
    return Json(TreeJson(*t, decode_));
  }
  return Error(404, "no such API: " + std::string(path));
}

}  // namespace treepo::scheduler::dashboard

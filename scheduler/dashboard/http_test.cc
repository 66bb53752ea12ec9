// The dashboard's serving side: the Prometheus exposition (structure checked here, and by
// Debian's `promtool check metrics` where installed), the routes' access control and errors,
// and the Beast server on a real loopback socket: plain GETs and the WebSocket deltas.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "scheduler/dashboard/dashboard.h"
#include "scheduler/dashboard/exposition.h"
#include "scheduler/dashboard/http_client.h"
#include "scheduler/dashboard/http_server.h"
#include "scheduler/dashboard/routes.h"

namespace treepo::scheduler::dashboard {
namespace {

std::shared_ptr<DashboardSnapshot> SampleSnapshot(uint64_t seq) {
  auto s = std::make_shared<DashboardSnapshot>();
  s->seq = seq;
  s->run_name = "test";
  s->totals.segments = 12;
  s->totals.tokens_decoded = 96;
  s->totals.queue_depth = 3;
  s->totals.rejected_frames = {{"decode", 2}, {"role", 1}};
  WorkerView w;
  w.id = 1;
  w.name = "worker \"1\"\\\n";  // every character the format must escape
  w.state = "busy";
  w.pages_capacity = 100;
  w.pages_used = 40;
  w.pages_free = 60;
  w.weight_version = 5;
  s->workers.push_back(w);
  w.id = 2;
  w.name = "worker-2";
  w.state = "dead";
  s->workers.push_back(w);
  s->latency = LatencyHistogram::WithDefaultBounds();
  for (double v : {0.003, 0.02, 0.02, 0.7, 100.0}) s->latency.Observe(v);
  s->rl.active = true;
  s->rl.step = 4;
  s->rl.reward_mean = 0.5;
  s->events = std::make_shared<const std::vector<EventView>>(
      std::vector<EventView>{{seq, 0, "join", "worker-2 joined"}});
  s->metrics = std::make_shared<const std::vector<MetricLine>>(
      std::vector<MetricLine>{{seq, {{"step", 0}, {"reward_mean", 0.5}}}});
  auto tree = std::make_shared<TreeView>();
  tree->key = 7;
  auto node = std::make_shared<NodeView>();
  node->id = 1;
  node->depth = 1;
  node->tokens = {5, 6};
  node->pending = false;
  tree->nodes.push_back(node);
  tree->seq = seq;
  s->trees.push_back(tree);
  return s;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(ExpositionTest, EverySampleHasHelpAndTypeAndHistogramsAreCumulative) {
  const std::string text = PrometheusText(*SampleSnapshot(1));
  std::set<std::string> help, type;
  std::map<std::string, double> le;
  double inf = -1, count = -1;
  for (const std::string& l : Lines(text)) {
    ASSERT_FALSE(l.empty());
    if (l.rfind("# HELP ", 0) == 0) {
      help.insert(l.substr(7, l.find(' ', 7) - 7));
      continue;
    }
    if (l.rfind("# TYPE ", 0) == 0) {
      type.insert(l.substr(7, l.find(' ', 7) - 7));
      continue;
    }
    std::string name = l.substr(0, l.find_first_of("{ "));
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string base = name.substr(0, name.size() - std::strlen(suffix));
      if (name.size() > std::strlen(suffix) && name.ends_with(suffix) && type.count(base)) {
        name = base;
      }
    }
    EXPECT_TRUE(help.count(name)) << "no # HELP before " << l;
    EXPECT_TRUE(type.count(name)) << "no # TYPE before " << l;
    const double v = std::strtod(l.substr(l.rfind(' ') + 1).c_str(), nullptr);
    if (l.rfind("treepo_task_latency_seconds_bucket{le=\"+Inf\"}", 0) == 0) inf = v;
    if (l.rfind("treepo_task_latency_seconds_count", 0) == 0) count = v;
    if (l.rfind("treepo_task_latency_seconds_bucket", 0) == 0) le[l] = v;
  }
  EXPECT_EQ(inf, 5);
  EXPECT_EQ(count, 5);
  EXPECT_NE(text.find("treepo_task_latency_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("treepo_task_latency_seconds_bucket{le=\"0.025\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("treepo_task_latency_seconds_bucket{le=\"60\"} 4\n"), std::string::npos);
  EXPECT_NE(
      text.find("treepo_worker_kv_pages_used{worker=\"worker \\\"1\\\"\\\\\\n\",id=\"1\"} 40"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("treepo_worker_up{worker=\"worker-2\",id=\"2\"} 0"), std::string::npos);
  EXPECT_NE(text.find("treepo_frames_rejected_total{reason=\"decode\"} 2"), std::string::npos);
  EXPECT_NE(text.find("treepo_rl_step 4"), std::string::npos);
  EXPECT_NE(text.find("treepo_task_queue_depth 3"), std::string::npos);
}

TEST(ExpositionTest, PromtoolAcceptsIt) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/setup.sh)";
  }
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("treepo_metrics_" + std::to_string(::getpid()) + ".txt"))
                               .string();
  {
    std::ofstream out(path);
    out << PrometheusText(*SampleSnapshot(1));
  }
  const std::string cmd = "promtool check metrics < " + path + " > " + path + ".out 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(path + ".out");
  const std::string report((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << report;
  EXPECT_EQ(report, "") << "promtool lint findings:\n" << report;
  std::filesystem::remove(path);
  std::filesystem::remove(path + ".out");
}

class RoutesTest : public ::testing::Test {
 protected:
  void SetUp() override { publisher_.Publish(SampleSnapshot(3)); }
  HttpReply Get(const Routes& r, const std::string& target, const std::string& auth = "",
                const std::string& cookie = "") {
    return r.Handle(HttpRequestView{"GET", target, auth, cookie});
  }
  SnapshotPublisher publisher_;
};

TEST_F(RoutesTest, ServesThePageTheApiAndMetrics) {
  Routes r(&publisher_, "", nullptr);
  HttpReply page = Get(r, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<title>treepo dashboard</title>"), std::string::npos);
  EXPECT_EQ(Get(r, "/app.js").status, 200);
  EXPECT_EQ(Get(r, "/trees.js").status, 200);
  HttpReply m = Get(r, "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
  auto cluster = nlohmann::json::parse(Get(r, "/api/cluster").body);
  EXPECT_EQ(cluster["seq"], 3);
  EXPECT_EQ(cluster["workers"].size(), 2u);
  EXPECT_EQ(cluster["scheduler"]["segments"], 12);
  auto queries = nlohmann::json::parse(Get(r, "/api/queries").body);
  EXPECT_EQ(queries["running"].size(), 1u);
  auto tree = nlohmann::json::parse(Get(r, "/api/trees/7").body);
  EXPECT_EQ(tree["tree"].size(), 1u);
  EXPECT_EQ(tree["tree"][0]["token_ids"], (std::vector<int>{5, 6}));
  auto metrics = nlohmann::json::parse(Get(r, "/api/metrics?since=0").body);
  EXPECT_EQ(metrics["lines"].size(), 1u);
}

TEST_F(RoutesTest, LiveNodeTextIsDecodedOnRequest) {
  Routes r(&publisher_, "", [](const std::vector<int32_t>& t) {
    return "<" + std::to_string(t.size()) + " tokens>";
  });
  auto tree = nlohmann::json::parse(Get(r, "/api/trees/7").body);
  EXPECT_EQ(tree["tree"][0]["text"], "<2 tokens>");
}

TEST_F(RoutesTest, BadRequestsGetClearErrors) {
  Routes r(&publisher_, "", nullptr);
  EXPECT_EQ(Get(r, "/api/trees/x").status, 400);
  EXPECT_EQ(Get(r, "/api/trees/0").status, 400);
  EXPECT_EQ(Get(r, "/api/trees/99").status, 404);
  HttpReply since = Get(r, "/api/metrics?since=-1");
  EXPECT_EQ(since.status, 400);
  EXPECT_NE(since.body.find("since"), std::string::npos);
  EXPECT_EQ(Get(r, "/nope").status, 404);
  EXPECT_EQ(r.Handle(HttpRequestView{"POST", "/api/cluster", "", ""}).status, 405);
  SnapshotPublisher empty;
  Routes starting(&empty, "", nullptr);
  EXPECT_EQ(Get(starting, "/metrics").status, 503);
  EXPECT_EQ(Get(starting, "/").status, 200);
}

TEST_F(RoutesTest, TokenIsRequiredByHeaderQueryOrCookie) {
  Routes r(&publisher_, "s3cret", nullptr);
  EXPECT_EQ(Get(r, "/api/cluster").status, 401);
  EXPECT_EQ(Get(r, "/").status, 401);
  EXPECT_EQ(Get(r, "/metrics", "Bearer wrong").status, 401);
  EXPECT_EQ(Get(r, "/metrics", "Bearer s3cret").status, 200);
  EXPECT_EQ(Get(r, "/api/cluster?token=s3cret").status, 200);
  HttpReply page = Get(r, "/?token=s3cret");
  ASSERT_EQ(page.status, 200);
  ASSERT_EQ(page.headers.size(), 1u);
  EXPECT_EQ(page.headers[0].first, "Set-Cookie");
  EXPECT_EQ(Get(r, "/app.js", "", "a=b; treepo_dashboard_token=s3cret").status, 200);
  EXPECT_EQ(Get(r, "/app.js", "", "treepo_dashboard_token=s3cre").status, 401);
}

TEST(DashboardOptionsTest, RemoteBindNeedsAToken) {
  DashboardOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.bind = "0.0.0.0:8470";
  Status st = o.Validate();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("dashboard.token"), std::string::npos);
  o.token = "t";
  EXPECT_TRUE(o.Validate().ok());
  o.bind = "127.0.0.1";
  EXPECT_NE(o.Validate().message().find("dashboard.bind"), std::string::npos);
  o.bind = "127.0.0.1:99999";
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  Config c;
  ASSERT_TRUE(c.Set("dashboard.push_interval_ms=5").ok());
  DashboardOptions loaded;
  ASSERT_TRUE(LoadDashboardOptions(c, &loaded).ok());
  EXPECT_NE(loaded.Validate().message().find("dashboard.push_interval_ms"), std::string::npos);
}

class ServerTest : public ::testing::Test {
 protected:
  void Start(const std::string& token) {
    HttpServerOptions o;
    o.push_interval_ms = 20;
    auto s = HttpServer::Start(o, std::make_shared<const Routes>(&publisher_, token, nullptr),
                               &publisher_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
  }
  SnapshotPublisher publisher_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(ServerTest, AnswersGetsOnARealSocket) {
  Start("");
  auto h = HttpGet(server_->url() + "healthz", "", 5000);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->status, 200);
  auto m = HttpGet(server_->url() + "metrics", "", 5000);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->status, 503);
  publisher_.Publish(SampleSnapshot(1));
  m = HttpGet(server_->url() + "metrics", "", 5000);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("treepo_segments_total 12"), std::string::npos);
}

TEST_F(ServerTest, BindingAPortInUseIsAClearError) {
  Start("");
  HttpServerOptions o;
  o.bind = "127.0.0.1:" + std::to_string(server_->port());
  auto again =
      HttpServer::Start(o, std::make_shared<const Routes>(&publisher_, "", nullptr), &publisher_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(again.status().message().find("dashboard.bind"), std::string::npos);
}

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

TEST_F(ServerTest, WebSocketPushesDeltasOfWhatChanged) {
  Start("tok");
  publisher_.Publish(SampleSnapshot(1));
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  websocket::stream<tcp::socket> ws(ioc);
  net::connect(ws.next_layer(), resolver.resolve("127.0.0.1", std::to_string(server_->port())));
  beast::error_code ec;
  ws.handshake("127.0.0.1", "/ws", ec);
  EXPECT_TRUE(ec) << "a WebSocket without the token was accepted";
  websocket::stream<tcp::socket> ok(ioc);
  net::connect(ok.next_layer(), resolver.resolve("127.0.0.1", std::to_string(server_->port())));
  ok.handshake("127.0.0.1", "/ws?token=tok");
  beast::flat_buffer buffer;
  ok.read(buffer);
  auto first = nlohmann::json::parse(beast::buffers_to_string(buffer.data()));
  EXPECT_EQ(first["type"], "delta");
  EXPECT_EQ(first["since"], 0);
  EXPECT_EQ(first["seq"], 1);
  EXPECT_EQ(first["trees"].size(), 1u);
  EXPECT_EQ(first["events"].size(), 1u);
  buffer.clear();
  auto next = SampleSnapshot(2);
  next->trees.clear();  // the tree left; its events and lines are old
  publisher_.Publish(next);
  ok.read(buffer);
  auto second = nlohmann::json::parse(beast::buffers_to_string(buffer.data()));
  EXPECT_EQ(second["since"], 1);
  EXPECT_EQ(second["seq"], 2);
  EXPECT_TRUE(second["trees"].empty());
  EXPECT_EQ(second["removed_trees"], nlohmann::json::array({7}));
  EXPECT_TRUE(second["events"].empty() || second["events"][0]["seq"] == 2);
  ok.close(websocket::close_code::normal);
}

}  // namespace
}  // namespace treepo::scheduler::dashboard

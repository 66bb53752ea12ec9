// The dashboard of a running `treepo train`, scraped as Prometheus would: /metrics passes
// `promtool check metrics`, and a real Prometheus server (Debian's `prometheus`) scraping it
// for a few seconds holds the scheduler's series (skipped, saying why, where it cannot start).
// `treepo top --iterations 1` prints the same cluster as /api/cluster.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "scheduler/dashboard/http_client.h"
#include "tests/e2e_dashboard/running_train.h"

namespace {

namespace fs = std::filesystem;
namespace dash = treepo::scheduler::dashboard;
using treepo::testing::ReadAll;
using treepo::testing::WaitFor;

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class DashboardPrometheusE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("treepo_dash_prom_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    train_ = new treepo::testing::RunningTrain();
    error_ = train_->Start(root_, 400);
  }
  static void TearDownTestSuite() {
    delete train_;
    if (!HasFailure()) fs::remove_all(root_);
  }
  void SetUp() override {
    if (error_.rfind("no treepo binary", 0) == 0) GTEST_SKIP() << error_;
    ASSERT_EQ(error_, "");
  }
  // Waits (bounded) until the scheduler has computed segments, so every family has samples.
  void WaitForSegments() {
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = dash::HttpGet(train_->url() + "api/cluster", "", 5000);
          return r.ok() && r->status == 200 &&
                 nlohmann::json::parse(r->body)["scheduler"]["segments"].get<int64_t>() > 0;
        },
        120000))
        << train_->log();
  }

  static inline fs::path root_;
  static inline treepo::testing::RunningTrain* train_ = nullptr;
  static inline std::string error_;
};

TEST_F(DashboardPrometheusE2eTest, MetricsPassPromtool) {
  WaitForSegments();
  auto m = dash::HttpGet(train_->url() + "metrics", "", 5000);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->status, 200);
  for (const char* series : {"treepo_segments_total", "treepo_worker_kv_pages_free{",
                             "treepo_task_latency_seconds_bucket{", "treepo_weight_version",
                             "treepo_rl_step", "treepo_worker_weight_version{"}) {
    EXPECT_NE(m->body.find(series), std::string::npos) << series;
  }
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/setup.sh)";
  }
  const fs::path file = root_ / "metrics.txt";
  std::ofstream(file) << m->body;
  const std::string cmd = "promtool check metrics < " + file.string() + " > " +
                          (root_ / "promtool.out").string() + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << ReadAll((root_ / "promtool.out").string());
  EXPECT_EQ(ReadAll((root_ / "promtool.out").string()), "");
}

TEST_F(DashboardPrometheusE2eTest, ARealPrometheusScrapesTheScheduler) {
  const std::string prometheus = treepo::testing::EnvOr("TREEPO_PROMETHEUS", "/usr/bin/prometheus");
  if (!fs::exists(prometheus)) {
    GTEST_SKIP() << "no prometheus at " << prometheus
                 << " (Debian package prometheus, scripts/setup.sh; or set TREEPO_PROMETHEUS)";
  }
  WaitForSegments();
  const std::string target = train_->url().substr(7, train_->url().size() - 8);  // host:port
  const int port = FreePort();
  const fs::path dir = root_ / "prometheus";
  fs::create_directories(dir / "data");
  std::ofstream(dir / "prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
      << "scrape_configs:\n  - job_name: treepo\n    static_configs:\n      - targets: ['" << target
      << "']\n";
  auto prom = treepo::cluster::ChildProcess::Spawn(
      {prometheus, "--config.file=" + (dir / "prometheus.yml").string(),
       "--storage.tsdb.path=" + (dir / "data").string(),
       "--web.listen-address=127.0.0.1:" + std::to_string(port)},
      (dir / "prometheus.log").string());
  if (!prom.ok()) GTEST_SKIP() << "prometheus did not start: " << prom.status().ToString();
  const std::string api = "http://127.0.0.1:" + std::to_string(port) + "/api/v1/query?query=";
  if (!WaitFor(
          [&] {
            auto r =
                dash::HttpGet("http://127.0.0.1:" + std::to_string(port) + "/-/ready", "", 1000);
            return (r.ok() && r->status == 200) || !prom->Running();
          },
          30000) ||
      !prom->Running()) {
    GTEST_SKIP() << "prometheus could not start here: "
                 << ReadAll((dir / "prometheus.log").string());
  }
  nlohmann::json result;
  const bool found = WaitFor(
      [&] {
        auto r = dash::HttpGet(api + "treepo_segments_total", "", 2000);
        if (!r.ok() || r->status != 200) return false;
        result = nlohmann::json::parse(r->body, nullptr, false);
        return result.is_object() && !result["data"]["result"].empty();
      },
      30000);
  ASSERT_TRUE(found) << "Prometheus never stored treepo_segments_total:\n"
                     << ReadAll((dir / "prometheus.log").string());
  EXPECT_GT(std::stod(result["data"]["result"][0]["value"][1].get<std::string>()), 0.0);
  // Per-worker series arrive with their labels, and the scrape target is up.
  auto w = dash::HttpGet(api + "treepo_worker_kv_pages_capacity", "", 2000);
  ASSERT_TRUE(w.ok());
  auto wj = nlohmann::json::parse(w->body);
  ASSERT_EQ(wj["data"]["result"].size(), 2u) << w->body;
  EXPECT_EQ(wj["data"]["result"][0]["value"][1], "256");
  EXPECT_TRUE(wj["data"]["result"][0]["metric"].contains("worker"));
  auto up = dash::HttpGet(api + "up", "", 2000);
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(nlohmann::json::parse(up->body)["data"]["result"][0]["value"][1], "1");
  prom->Terminate(5000);
}

TEST_F(DashboardPrometheusE2eTest, TopPrintsTheClusterTable) {
  WaitForSegments();
  const std::string out = (root_ / "top.out").string();
  const std::string cmd = treepo::testing::TreepoBinary() + " top --run " +
                          (root_ / "run").string() + " --iterations 1 > " + out + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadAll(out);
  const std::string table = ReadAll(out);
  EXPECT_NE(table.find("worker-1"), std::string::npos) << table;
  EXPECT_NE(table.find("worker-2"), std::string::npos) << table;
  EXPECT_NE(table.find("KV USE"), std::string::npos) << table;
  EXPECT_NE(table.find("learner"), std::string::npos) << table;
  // A dashboard that is not there is a clear error.
  const std::string bad = treepo::testing::TreepoBinary() + " top --run " + root_.string() +
                          " --iterations 1 > " + out + " 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
  EXPECT_NE(ReadAll(out).find("dashboard_url"), std::string::npos) << ReadAll(out);
}

}  // namespace

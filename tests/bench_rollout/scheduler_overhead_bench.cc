// scheduler_overhead_bench: how many segment tasks the scheduler dispatches, and how many
// results it handles, per second when workers do no model work.
//
// The real SchedulerService and RunRollout run in this process (the scheduler's thread is the
// main thread) over one TreeSampler per query. Fake workers are threads, each with its own
// protocols::Dealer speaking the real protocol: RegisterWorker, heartbeats, and for every
// SegmentTask an immediate SegmentResult with L made-up tokens per child (a fixed non-EOS
// token, log-probs 0, finish = length), one SegmentResultBatch per SegmentTaskBatch. The
// detokenizer returns "", so no stop rule fires before MAX_TOKENS / MAX_DEPTH: every path
// runs d segments and each query ends with exactly w leaves.
//
// --dashboard off,on,on+5 runs each configuration without the dashboard, with it (snapshots
// published every 250 ms, live trees, the HTTP server up), and with it and 5 clients: 3 polling
// /api/cluster, /api/queries and /metrics every 250 ms, 2 streaming the WebSocket.
// "snapshots" is the dashboard without the live trees (the loop's snapshots alone).
//
// Per worker count it prints tasks/s, results/s, segments/s, wall time per task and the
// scheduler thread's CPU time per task (zmq's own I/O threads not counted). Each
// configuration runs --reps times (default 2), the dashboard modes taking turns; the table
// gives the best (shortest wall) run and the medians over the repetitions.
//
// Usage: scheduler_overhead_bench [--json FILE] [--queries N] [--width W]
//          [--segment-tokens L] [--max-depth D] [--branch B] [--mode tree|sequential]
//          [--workers 1,2,4] [--max-concurrent-queries N] [--reps N]
//          [--dashboard off,on,on+5]
#include <time.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "protocols/codec.h"
#include "protocols/messages.h"
#include "protocols/transport.h"
#include "scheduler/dashboard/dashboard.h"
#include "scheduler/dashboard/http_client.h"
#include "scheduler/service/rollout_runner.h"
#include "scheduler/service/scheduler_service.h"
#include "scheduler/tree/tree_sampler.h"

namespace {

namespace pr = treepo::protocols;
namespace sch = treepo::scheduler;
using treepo::NodeId;
using treepo::QueryId;
using treepo::Result;
using treepo::Status;
using treepo::WorkerId;
using SteadyClock = std::chrono::steady_clock;

constexpr int32_t kFakeToken = 100;  // not EOS (2) in any llama2.c vocabulary

int64_t NowMs() { return treepo::SteadyNowMs(); }

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// A worker that answers every task at once. Owns one thread and one Dealer (created and
// destroyed on that thread). Start() once, then Stop() (joins).
class FakeWorker {
 public:
  FakeWorker(pr::Context* context, std::string endpoint, std::string name)
      : context_(context), endpoint_(std::move(endpoint)), name_(std::move(name)) {}
  ~FakeWorker() { (void)Stop(); }

  void Start() {
    thread_ = std::thread([this] { status_ = Run(); });
  }
  // Tells the thread to leave its loop and joins it. Returns the thread's final status.
  Status Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  int64_t tasks_answered() const { return tasks_answered_.load(); }

 private:
  Status Send(pr::Dealer& dealer, pr::Payload payload) {
    pr::Message m;
    m.sender = id_.value();
    m.epoch = epoch_;
    m.payload = std::move(payload);
    const std::vector<uint8_t> frame = pr::Encode(m);
    while (true) {
      Status st = dealer.Send(frame);
      if (st.code() != treepo::StatusCode::kResourceExhausted || stop_.load()) return st;
      (void)dealer.Poll(1);
    }
  }

  Status Register(pr::Dealer& dealer) {
    pr::RegisterWorker reg;
    reg.worker_name = name_;
    reg.threads = 1;
    reg.page_capacity = 1u << 20;
    reg.page_size = 16;
    const int64_t deadline = NowMs() + 30000;
    while (!stop_.load() && NowMs() < deadline) {
      TREEPO_RETURN_IF_ERROR(Send(dealer, reg));
      TREEPO_ASSIGN_OR_RETURN(auto frame, dealer.Recv(1000));
      if (!frame) continue;
      TREEPO_ASSIGN_OR_RETURN(pr::Message m, pr::Decode(*frame));
      if (const auto* ack = m.get_if<pr::RegisterAck>()) {
        id_ = WorkerId(ack->assigned_id);
        epoch_ = ack->epoch;
        heartbeat_ms_ = std::max<int>(1, static_cast<int>(ack->heartbeat_interval_ms));
        return treepo::OkStatus();
      }
    }
    return treepo::Unavailable(name_ + ": no RegisterAck");
  }

  Status Answer(pr::Dealer& dealer, const pr::SegmentTaskBatch& batch) {
    pr::SegmentResultBatch out;
    out.results.reserve(batch.tasks.size());
    for (const pr::SegmentTask& t : batch.tasks) {
      pr::SegmentResult r;
      r.task_id = t.task_id;
      r.worker_id = id_;
      r.prefilled_tokens = static_cast<uint32_t>(t.prefix_tokens.size());
      for (NodeId child : t.child_node_ids) {
        pr::ChildResult c;
        c.node_id = child;
        c.tokens.assign(t.max_new_tokens, kFakeToken);
        c.logprobs.assign(t.max_new_tokens, 0.0f);
        c.finish = pr::SegmentFinish::kLength;
        c.weight_version = t.weight_version;
        r.children.push_back(std::move(c));
      }
      out.results.push_back(std::move(r));
    }
    tasks_answered_.fetch_add(static_cast<int64_t>(batch.tasks.size()));
    out.total_pages = 1u << 20;
    out.free_pages = 1u << 20;
    out.batches_seen = batches_seen_;
    return Send(dealer, std::move(out));
  }

  Status Run() {
    pr::DealerOptions o;
    o.identity = name_;
    o.socket.send_hwm = 100000;
    o.socket.recv_hwm = 100000;
    TREEPO_ASSIGN_OR_RETURN(pr::Dealer dealer, pr::Dealer::Connect(*context_, endpoint_, o));
    TREEPO_RETURN_IF_ERROR(Register(dealer));
    int64_t next_heartbeat = 0;
    while (!stop_.load()) {
      const int64_t now = NowMs();
      if (now >= next_heartbeat) {
        pr::Heartbeat hb;
        hb.worker_id = id_;
        hb.epoch = epoch_;
        // Page figures as a real worker reports them (its pool never fills here).
        hb.total_pages = 1u << 20;
        hb.free_pages = 1u << 20;
        hb.batches_seen = batches_seen_;
        TREEPO_RETURN_IF_ERROR(Send(dealer, hb));
        next_heartbeat = now + heartbeat_ms_;
      }
      const int wait = static_cast<int>(std::clamp<int64_t>(next_heartbeat - now, 0, 20));
      TREEPO_ASSIGN_OR_RETURN(auto frame, dealer.Recv(wait));
      if (!frame) continue;
      TREEPO_ASSIGN_OR_RETURN(pr::Message m, pr::Decode(*frame));
      if (const auto* batch = m.get_if<pr::SegmentTaskBatch>()) {
        ++batches_seen_;
        TREEPO_RETURN_IF_ERROR(Answer(dealer, *batch));
      } else if (m.get_if<pr::Shutdown>() != nullptr) {
        break;
      }
    }
    return treepo::OkStatus();
  }

  pr::Context* context_;
  const std::string endpoint_;
  const std::string name_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> tasks_answered_{0};
  uint64_t batches_seen_ = 0;  // task batches received (reported like a real worker)
  Status status_;
  // Owned by the worker thread.
  WorkerId id_;
  uint64_t epoch_ = 0;
  int heartbeat_ms_ = 500;
};

// One query's sampler as a QueryDriver; node ids on the wire are (query << 32) | local id.
class BenchDriver final : public sch::QueryDriver {
 public:
  static Result<std::unique_ptr<sch::QueryDriver>> Create(size_t index,
                                                          const sch::SamplerOptions& options) {
    auto d = std::unique_ptr<BenchDriver>(new BenchDriver(QueryId(index + 1)));
    sch::SamplerQuery q;
    q.id = d->query_;
    q.name = "q" + std::to_string(index);
    q.prompt_tokens = {1, 400, 401, 402, 403, 404, 405, 406};
    auto detok = [](const std::vector<int32_t>&) { return std::string(); };
    TREEPO_ASSIGN_OR_RETURN(d->sampler_,
                            sch::TreeSampler::Create(std::move(q), options, detok, &d->ids_));
    return std::unique_ptr<sch::QueryDriver>(std::move(d));
  }

  Result<std::vector<pr::SegmentTask>> TakeTasks() override { return sampler_->TakeRequests(); }

  Status OnResult(const pr::SegmentTask&, const pr::SegmentResult& result) override {
    for (const pr::ChildResult& c : result.children) {
      TREEPO_RETURN_IF_ERROR(sampler_->OnResult(c, result.worker_id));
    }
    return treepo::OkStatus();
  }

  std::vector<NodeId> TakeReleasable() override { return sampler_->TakeReleasable(); }
  bool Done() const override { return sampler_->Done(); }
  Result<treepo::TreeRecord> TakeTree() override { return sampler_->TakeTree(); }
  const sch::QueryTree* live_tree() const override { return &sampler_->tree(); }

 private:
  // Node ids as the rollout driver makes them: (query << 32) | 1, 2, ...
  explicit BenchDriver(QueryId query) : query_(query), ids_(sch::PromptNode(query).value() + 1) {}

  QueryId query_;
  sch::NodeIdAllocator ids_;
  std::unique_ptr<sch::TreeSampler> sampler_;
};

// What the dashboard does during a run: off, on, or on with clients.
struct DashMode {
  std::string name = "off";
  bool on = false;
  bool trees = true;  // the rollout observer (live trees) too; false: loop snapshots only
  int clients = 0;    // 3 of every 5 poll, the others stream the WebSocket
};

// Clients of the dashboard at `url`, each on its own thread until Stop().
class DashClients {
 public:
  DashClients(const std::string& url, int port, int n) {
    for (int i = 0; i < n; ++i) {
      if (i % 5 < 3) {
        threads_.emplace_back([this, url] { Poll(url); });
      } else {
        threads_.emplace_back([this, port] { Stream(port); });
      }
    }
  }
  ~DashClients() { Stop(); }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int64_t requests() const { return requests_.load(); }
  int64_t messages() const { return messages_.load(); }

 private:
  void Poll(const std::string& url) {
    while (!stop_.load()) {
      for (const char* path : {"api/cluster", "api/queries", "metrics"}) {
        if (sch::dashboard::HttpGet(url + path, "", 5000).ok()) requests_.fetch_add(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
  void Stream(int port) {
    namespace net = boost::asio;
    namespace ws = boost::beast::websocket;
    net::io_context ioc;
    net::ip::tcp::resolver resolver(ioc);
    ws::stream<net::ip::tcp::socket> s(ioc);
    boost::beast::error_code ec;
    net::connect(s.next_layer(), resolver.resolve("127.0.0.1", std::to_string(port)), ec);
    if (!ec) s.handshake("127.0.0.1", "/ws", ec);
    if (ec) return;
    // A read with no deadline would keep Stop() waiting: the socket is closed from here.
    std::thread reader([&] {
      boost::beast::flat_buffer b;
      while (true) {
        s.read(b, ec);
        if (ec) break;
        messages_.fetch_add(1);
        b.clear();
      }
    });
    while (!stop_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    s.next_layer().close(ec);
    reader.join();
  }

  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> requests_{0}, messages_{0};
};

struct BenchConfig {
  int queries = 256;
  sch::SamplerOptions sampler;
  int max_concurrent_queries = 64;
  std::vector<int> worker_counts = {1, 2, 4};
  int reps = 2;
  std::vector<DashMode> dashboard = {DashMode{}};
};

struct Measure {
  int workers = 0;
  int64_t tasks = 0, results = 0, segments = 0, leaves = 0, frames_in = 0;
  double wall_s = 0, sched_cpu_s = 0;
  int64_t snapshots = 0, client_requests = 0, ws_messages = 0;
};

Result<Measure> RunOnce(const BenchConfig& cfg, int n_workers, const DashMode& dash_mode) {
  sch::SchedulerOptions so;
  so.heartbeat_timeout_ms = 60000;  // a loaded machine must not declare fake workers dead
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<sch::SchedulerService> service,
                          sch::SchedulerService::Create(so));
  pr::Context context;
  std::vector<std::unique_ptr<FakeWorker>> workers;
  for (int i = 0; i < n_workers; ++i) {
    workers.push_back(std::make_unique<FakeWorker>(&context, service->endpoint(),
                                                   "fake-" + std::to_string(i + 1)));
    workers.back()->Start();
  }
  auto stop_all = [&workers]() {
    Status first;
    for (auto& w : workers) {
      Status st = w->Stop();
      if (first.ok() && !st.ok()) first = st;
    }
    return first;
  };
  Status st = service->WaitForWorkers(n_workers, 30000, nullptr);
  if (!st.ok()) {
    (void)stop_all();
    return st;
  }
  sch::RolloutRunOptions ro;
  ro.max_concurrent_queries = cfg.max_concurrent_queries;
  std::unique_ptr<sch::dashboard::Dashboard> dash;
  std::unique_ptr<DashClients> clients;
  if (dash_mode.on) {
    sch::dashboard::DashboardOptions dopt;
    auto d = sch::dashboard::Dashboard::Start(dopt, nullptr, "bench");
    if (!d.ok()) {
      (void)stop_all();
      return d.status();
    }
    dash = std::move(*d);
    service->set_loop_observer(&dash->recorder());
    if (dash_mode.trees) ro.observer = &dash->recorder();
    const std::string url = dash->url();
    const int port = std::atoi(url.substr(url.rfind(':') + 1).c_str());
    if (dash_mode.clients > 0)
      clients = std::make_unique<DashClients>(url, port, dash_mode.clients);
  }
  const sch::SamplerOptions sampler = cfg.sampler;
  sch::DriverFactory factory = [&sampler](size_t index) {
    return BenchDriver::Create(index, sampler);
  };
  const auto before = service->counters();
  const double cpu0 = ThreadCpuSeconds();
  const auto t0 = SteadyClock::now();
  Result<sch::RolloutOutput> out =
      sch::RunRollout(service.get(), cfg.queries, factory, ro, nullptr);
  const double wall = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const double cpu = ThreadCpuSeconds() - cpu0;
  Measure m;
  if (clients) {
    clients->Stop();
    m.client_requests = clients->requests();
    m.ws_messages = clients->messages();
  }
  if (dash) {
    m.snapshots = static_cast<int64_t>(dash->recorder().published());
    service->set_loop_observer(nullptr);
  }
  const Status workers_st = stop_all();
  if (!out.ok()) return out.status();
  TREEPO_RETURN_IF_ERROR(workers_st);
  m.workers = n_workers;
  m.tasks = out->stats.tasks;
  m.segments = out->stats.segments;
  m.leaves = out->stats.leaves;
  m.results = service->counters().results - before.results;
  m.frames_in = service->counters().frames_in - before.frames_in;
  m.wall_s = wall;
  m.sched_cpu_s = cpu;
  if (m.leaves != static_cast<int64_t>(cfg.queries) * cfg.sampler.width) {
    return treepo::Internal("expected " + std::to_string(cfg.queries * cfg.sampler.width) +
                            " leaves, got " + std::to_string(m.leaves));
  }
  return m;
}

std::vector<int> ParseIntList(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::atoi(item.c_str()));
  return out;
}

void Usage() {
  std::fprintf(stderr,
               "usage: scheduler_overhead_bench [--json FILE] [--queries N] [--width W] "
               "[--segment-tokens L] [--max-depth D] [--branch B] [--mode tree|sequential] "
               "[--workers 1,2,4] [--max-concurrent-queries N] [--reps N] "
               "[--dashboard off,on,on+5]\n");
}

}  // namespace

int main(int argc, char** argv) {
  treepo::InitLogging("scheduler_overhead_bench", "warn");  // the table alone on stdout
  BenchConfig cfg;
  cfg.sampler.width = 16;
  cfg.sampler.segment_tokens = 4;
  cfg.sampler.max_depth = 8;
  cfg.sampler.branch_factor = 2;
  cfg.sampler.seed = 1;
  std::string json_path, mode = "tree";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    }
    if (i + 1 >= argc) {
      Usage();
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--json") {
      json_path = v;
    } else if (a == "--queries") {
      cfg.queries = std::atoi(v.c_str());
    } else if (a == "--width") {
      cfg.sampler.width = std::atoi(v.c_str());
    } else if (a == "--segment-tokens") {
      cfg.sampler.segment_tokens = std::atoi(v.c_str());
    } else if (a == "--max-depth") {
      cfg.sampler.max_depth = std::atoi(v.c_str());
    } else if (a == "--branch") {
      cfg.sampler.branch_factor = std::atoi(v.c_str());
    } else if (a == "--mode") {
      mode = v;
    } else if (a == "--workers") {
      cfg.worker_counts = ParseIntList(v);
    } else if (a == "--max-concurrent-queries") {
      cfg.max_concurrent_queries = std::atoi(v.c_str());
    } else if (a == "--reps") {
      cfg.reps = std::atoi(v.c_str());
    } else if (a == "--dashboard") {
      cfg.dashboard.clear();
      std::stringstream in(v);
      for (std::string item; std::getline(in, item, ',');) {
        DashMode d;
        d.name = item;
        if (item == "on") {
          d.on = true;
        } else if (item == "snapshots") {
          d.on = true;
          d.trees = false;
        } else if (item.rfind("on+", 0) == 0 && std::atoi(item.c_str() + 3) > 0) {
          d.on = true;
          d.clients = std::atoi(item.c_str() + 3);
        } else if (item != "off") {
          std::fprintf(stderr, "--dashboard: '%s' is not off, snapshots, on or on+N\n",
                       item.c_str());
          return 2;
        }
        cfg.dashboard.push_back(d);
      }
    } else {
      Usage();
      return 2;
    }
  }
  if (mode != "tree" && mode != "sequential") {
    std::fprintf(stderr, "--mode must be tree or sequential\n");
    return 2;
  }
  cfg.sampler.sequential = mode == "sequential";
  if (const Status st = cfg.sampler.Validate(); !st.ok()) {
    std::fprintf(stderr, "bad sampler options: %s\n", st.ToString().c_str());
    return 2;
  }
  if (cfg.queries < 1 || cfg.reps < 1 || cfg.max_concurrent_queries < 1 ||
      cfg.worker_counts.empty() ||
      std::any_of(cfg.worker_counts.begin(), cfg.worker_counts.end(),
                  [](int n) { return n < 1; })) {
    std::fprintf(stderr,
                 "--queries, --reps, --max-concurrent-queries and --workers must be >= 1\n");
    return 2;
  }

  std::printf(
      "scheduler overhead: %s mode, %d queries, w=%d L=%d d=%d b=%d, %d queries open, "
      "best and median of %d, modes interleaved\n\n",
      mode.c_str(), cfg.queries, cfg.sampler.width, cfg.sampler.segment_tokens,
      cfg.sampler.max_depth, cfg.sampler.branch_factor, cfg.max_concurrent_queries, cfg.reps);
  std::printf(
      "| fake workers | dashboard | tasks | segments | wall s | tasks/s | vs off | results/s | "
      "segments/s | wall us/task | sched CPU us/task | median tasks/s | median vs off | "
      "median sched CPU us/task | snapshots | client requests | ws messages |\n");
  std::printf(
      "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  nlohmann::json rows = nlohmann::json::array();
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  };
  for (int n : cfg.worker_counts) {
    // Repetitions run the dashboard modes in turn (off, on, ..., off, on, ...), so that a
    // machine whose speed drifts affects every mode alike.
    std::vector<std::vector<Measure>> runs(cfg.dashboard.size());
    for (int rep = 0; rep < cfg.reps; ++rep) {
      for (size_t d = 0; d < cfg.dashboard.size(); ++d) {
        Result<Measure> m = RunOnce(cfg, n, cfg.dashboard[d]);
        if (!m.ok()) {
          std::fprintf(stderr, "%d workers: %s\n", n, m.status().ToString().c_str());
          return 1;
        }
        runs[d].push_back(*m);
      }
    }
    double off_tps = 0, off_median_tps = 0;
    for (size_t d = 0; d < cfg.dashboard.size(); ++d) {
      const DashMode& dm = cfg.dashboard[d];
      Measure best;
      std::vector<double> tps_all, cpu_all;
      for (const Measure& m : runs[d]) {
        if (best.tasks == 0 || m.wall_s < best.wall_s) best = m;
        tps_all.push_back(m.tasks / m.wall_s);
        cpu_all.push_back(m.sched_cpu_s * 1e6 / m.tasks);
      }
      const double tps = best.tasks / best.wall_s, rps = best.results / best.wall_s;
      const double sps = best.segments / best.wall_s;
      const double us_task = best.wall_s * 1e6 / best.tasks;
      const double cpu_us_task = best.sched_cpu_s * 1e6 / best.tasks;
      const double median_tps = median(tps_all), median_cpu = median(cpu_all);
      if (!dm.on) {
        off_tps = tps;
        off_median_tps = median_tps;
      }
      const std::string vs_off = off_tps > 0 ? std::to_string(tps / off_tps).substr(0, 5) : "-";
      const std::string median_vs_off =
          off_median_tps > 0 ? std::to_string(median_tps / off_median_tps).substr(0, 5) : "-";
      std::printf(
          "| %d | %s | %lld | %lld | %.3f | %.0f | %s | %.0f | %.0f | %.1f | %.1f | %.0f | %s | "
          "%.1f | %lld | %lld | %lld |\n",
          n, dm.name.c_str(), static_cast<long long>(best.tasks),
          static_cast<long long>(best.segments), best.wall_s, tps, vs_off.c_str(), rps, sps,
          us_task, cpu_us_task, median_tps, median_vs_off.c_str(), median_cpu,
          static_cast<long long>(best.snapshots), static_cast<long long>(best.client_requests),
          static_cast<long long>(best.ws_messages));
      rows.push_back(
          {{"fake_workers", n},
           {"dashboard", dm.name},
           {"tasks_per_s_vs_off", off_tps > 0 ? tps / off_tps : 0.0},
           {"median_tasks_per_s", median_tps},
           {"median_tasks_per_s_vs_off", off_median_tps > 0 ? median_tps / off_median_tps : 0.0},
           {"median_scheduler_cpu_us_per_task", median_cpu},
           {"snapshots", best.snapshots},
           {"client_requests", best.client_requests},
           {"ws_messages", best.ws_messages},
           {"tasks", best.tasks},
           {"results", best.results},
           {"segments", best.segments},
           {"leaves", best.leaves},
           {"frames_in", best.frames_in},
           {"wall_s", best.wall_s},
           {"tasks_per_s", tps},
           {"results_per_s", rps},
           {"segments_per_s", sps},
           {"wall_us_per_task", us_task},
           {"scheduler_cpu_s", best.sched_cpu_s},
           {"scheduler_cpu_us_per_task", cpu_us_task},
           {"target_tasks_per_s", 20000},
           {"meets_target", tps >= 20000}});
    }
  }
  std::printf("\ntarget: >= 20000 tasks/s\n");
  if (!json_path.empty()) {
    nlohmann::json j = {{"benchmark", "scheduler_overhead"},
                        {"mode", mode},
                        {"queries", cfg.queries},
                        {"width", cfg.sampler.width},
                        {"segment_tokens", cfg.sampler.segment_tokens},
                        {"max_depth", cfg.sampler.max_depth},
                        {"branch", cfg.sampler.branch_factor},
                        {"max_concurrent_queries", cfg.max_concurrent_queries},
                        {"reps", cfg.reps},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"rows", rows}};
    std::ofstream out(json_path);
    out << j.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  return 0;
}

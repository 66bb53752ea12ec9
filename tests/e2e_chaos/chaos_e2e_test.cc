// The chaos test: a short `treepo train` (tiny model, 3 workers, 1 learner, real processes on
// loopback) while the test
//   - sends garbage to the scheduler's port from a raw ZeroMQ DEALER: random single frames, an
//     empty frame, multipart messages, a forged RegisterWorker that then never speaks again, a
//     forged result batch full of out-of-range tokens under a real worker's id;
//   - writes random bytes to the port over plain TCP connections;
//   - SIGKILLs one worker, and SIGSTOPs another past the heartbeat timeout, then SIGCONTs it.
// The run must finish every step, every tree must have exactly w leaves per query, and nothing
// of the garbage may reach a tree: tokens in the vocabulary, every node computed by a real
// worker process of the run.
//
// TREEPO_CHAOS_NO_MULTIPART=1 leaves out the multipart messages and the raw TCP bytes (which
// arrive as multipart messages too), for a build whose transport still treats multipart
// messages as fatal.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "cluster/child_process.h"
#include "common/testing/paths.h"
#include "common/tree/tree_record.h"
#include "protocols/codec.h"
#include "tests/e2e_chaos/e2e_util.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;
using cluster::ChildProcess;
using testing::ReadAll;
using testing::WaitFor;

constexpr int kSteps = 10, kQueries = 4, kWidth = 4;

std::vector<uint8_t> RandomBytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> out(n);
  for (uint8_t& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

int StepLines(const std::string& metrics) {
  int n = 0;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"eval\"") == std::string::npos && !line.empty()) ++n;
  }
  return n;
}

// Garbage from a raw DEALER. Returns the replies it got (ErrorReply frames, RegisterAck).
// Short, so that the paused worker is declared dead soon; a thread-sanitized learner (5-20x
// slower) needs longer between its heartbeats while it trains.
#if defined(__SANITIZE_THREAD__)
constexpr int kHeartbeatTimeoutMs = 5000;
#else
constexpr int kHeartbeatTimeoutMs = 1000;
#endif

int SendZmqGarbage(const std::string& endpoint, std::mt19937& rng, bool multipart) {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 1000);
  s.set(zmq::sockopt::routing_id, "chaos-" + std::to_string(rng() % 1000));
  s.connect(endpoint);
  auto send = [&](const std::vector<uint8_t>& f, bool more) {
    s.send(zmq::buffer(f.data(), f.size()),
           more ? zmq::send_flags::sndmore : zmq::send_flags::none);
  };
  for (size_t n : {1, 7, 64, 4096, 70000}) send(RandomBytes(rng, n), false);
  send({}, false);  // an empty frame
  if (multipart) {
    send(RandomBytes(rng, 10), true);
    send(RandomBytes(rng, 20), false);
    send({}, true);  // an empty delimiter, as a REQ socket would send
    send(RandomBytes(rng, 5), true);
    send(RandomBytes(rng, 5), false);
  }
  // A well-formed result under worker 1's id, from the wrong peer and with forged tokens.
  protocols::Message forged;
  forged.sender = 1;
  forged.epoch = 1;
  protocols::SegmentResultBatch batch;
  protocols::SegmentResult r;
  r.task_id = TaskId(1);
  r.worker_id = WorkerId(1);
  protocols::ChildResult c;
  c.node_id = NodeId(1);
  c.tokens = {999999, -5, 999999};
  c.logprobs = {0, 0, 0};
  r.children.push_back(c);
  batch.results.push_back(r);
  forged.payload = batch;
  send(protocols::Encode(forged), false);
  // A worker that registers and is never heard again: declared dead, its tasks requeued.
  protocols::Message reg;
  reg.payload = protocols::RegisterWorker{"intruder", 1, 64, 16, 0};
  send(protocols::Encode(reg), false);
  // The first answer may take a while (sanitizer builds, a loaded machine); the rest follow it.
  int replies = 0;
  s.set(zmq::sockopt::rcvtimeo, 30000);
  for (int i = 0; i < 20; ++i) {
    zmq::message_t m;
    if (!s.recv(m)) break;
    ++replies;
    s.set(zmq::sockopt::rcvtimeo, 200);
  }
  return replies;
}

// Random bytes over plain TCP connections to the port: without a ZMTP greeting (libzmq then
// reads them as ZMTP 1.0 frames) and after a valid one. Either way they arrive as random
// frames, multipart messages among them.
void SendTcpGarbage(int port, std::mt19937& rng) {
  for (int i = 0; i < 3; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      std::vector<uint8_t> bytes = RandomBytes(rng, 4096);
      if (i == 1) {
        const uint8_t greeting[] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0};
        std::copy(std::begin(greeting), std::end(greeting), bytes.begin());
      }
      [[maybe_unused]] ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }
    ::close(fd);
  }
}

class ChaosE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = testing::TreepoBinary();
    if (!fs::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    dir_ = testing::FreshTempDir("chaos_e2e");
    auto pre = ChildProcess::Spawn({binary_,      "pretrain", "--out",           dir_ + "/base",
                                    "--steps",    "20",       "--batch",         "8",
                                    "--dim",      "32",       "--hidden",        "64",
                                    "--layers",   "1",        "--heads",         "2",
                                    "--kv-heads", "2",        "--max-seq-len",   "128",
                                    "--corpus",   "200",      "--eval-problems", "0",
                                    "--threads",  "1"},
                                   dir_ + "/pretrain.log");
    ASSERT_TRUE(pre.ok());
    ASSERT_TRUE(pre->Wait(60000)) << ReadAll(dir_ + "/pretrain.log");
    ASSERT_EQ(pre->exit_code(), 0) << ReadAll(dir_ + "/pretrain.log");
  }
  void TearDown() override {
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }

  std::string dir_, binary_;
};

TEST_F(ChaosE2eTest, GarbageKilledAndPausedWorkersDoNotReachTheTreesOrStopTheRun) {
  const bool multipart = std::getenv("TREEPO_CHAOS_NO_MULTIPART") == nullptr;
  const std::string out = dir_ + "/run", log = dir_ + "/train.log";
  std::vector<std::string> argv = {binary_, "train"};
  const std::vector<std::string> sets = {
      "model.base=" + dir_ + "/base",
      "out_dir=" + out,
      "steps=" + std::to_string(kSteps),
      "rollout.queries_per_step=" + std::to_string(kQueries),
      "rollout.width=" + std::to_string(kWidth),
      "rollout.segment_tokens=8",
      "rollout.max_depth=2",
      "rollout.branch=2",
      "task.train_problems=50",
      "learner.lr=1e-3",
      "cluster.workers=3",
      "cluster.worker_pages=256",
      "scheduler.heartbeat_interval_ms=100",
      "scheduler.heartbeat_timeout_ms=" + std::to_string(kHeartbeatTimeoutMs),
      "eval.before=false",
      "eval.after=false",
      "eval.checkpoints=false",
      "output.checkpoint_every=0",
      "output.report=false",
      "output.progress=false"};
  for (const std::string& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  auto train = ChildProcess::Spawn(argv, log);
  ASSERT_TRUE(train.ok()) << train.status().ToString();
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadAll(out + "/endpoint").find("tcp://") != std::string::npos || !train->Running();
      },
      60000))
      << ReadAll(log);
  ASSERT_TRUE(train->Running()) << ReadAll(log);
  std::string ep = ReadAll(out + "/endpoint");
  ep.erase(ep.find_last_not_of('\n') + 1);
  const int port = std::stoi(ep.substr(ep.rfind(':') + 1));
  std::mt19937 rng(12345);

  // Garbage while the workers and the learner register.
  EXPECT_GT(SendZmqGarbage(ep, rng, multipart), 0) << "the scheduler answered nothing";
  if (multipart) SendTcpGarbage(port, rng);

  // Once a step is done: kill worker-1, pause worker-2 past the heartbeat timeout.
  const std::string metrics = out + "/metrics.jsonl";
  ASSERT_TRUE(WaitFor([&] { return StepLines(metrics) >= 1 || !train->Running(); }, 60000))
      << ReadAll(log);
  ASSERT_TRUE(train->Running()) << ReadAll(log);
  const pid_t w1 = testing::FindChild(train->pid(), {"worker", "worker-1"});
  const pid_t w2 = testing::FindChild(train->pid(), {"worker", "worker-2"});
  ASSERT_GT(w1, 0);
  ASSERT_GT(w2, 0);
  std::smatch m;
  const std::string text = ReadAll(log);
  ASSERT_TRUE(std::regex_search(text, m, std::regex("worker ([0-9]+) 'worker-2' registered")));
  const std::string w2_id = m[1];
  ::kill(w1, SIGKILL);
  ::kill(w2, SIGSTOP);
  const bool declared = WaitFor(
      [&] {
        return ReadAll(log).find("worker " + w2_id + " missed heartbeats") != std::string::npos ||
               !train->Running();
      },
      20000);
  ::kill(w2, SIGCONT);
  ASSERT_TRUE(declared) << ReadAll(log);
  EXPECT_LT(StepLines(metrics), kSteps) << "the faults came after the run";

  // More garbage mid-run.
  EXPECT_GT(SendZmqGarbage(ep, rng, multipart), 0);
  if (multipart) SendTcpGarbage(port, rng);

  ASSERT_TRUE(train->Wait(kHeartbeatTimeoutMs * 100)) << ReadAll(log);
  ASSERT_EQ(train->exit_code(), 0) << ReadAll(log);

  // Every step completed, in order, with every query's w leaves.
  std::vector<nlohmann::json> lines;
  {
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (!j.contains("eval")) lines.push_back(j);
    }
  }
  ASSERT_EQ(lines.size(), static_cast<size_t>(kSteps));
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_EQ(lines[s]["step"].get<int>(), s);
    EXPECT_EQ(lines[s]["leaves"].get<int>(), kQueries * kWidth) << "step " << s;
  }
  // The real workers: registrations of the processes named worker-N (worker-2 twice).
  std::set<uint32_t> real;
  const std::string final_log = ReadAll(log);
  const std::regex reg("worker ([0-9]+) 'worker-[0-9]+' registered");
  for (auto it = std::sregex_iterator(final_log.begin(), final_log.end(), reg);
       it != std::sregex_iterator(); ++it) {
    real.insert(static_cast<uint32_t>(std::stoul((*it)[1])));
  }
  EXPECT_GE(real.size(), 4u) << "worker-2 registers again after the pause";
  const int vocab = nlohmann::json::parse(ReadAll(dir_ + "/base/config.json"))["vocab_size"];
  for (int s = 0; s < kSteps; ++s) {
    const std::string name = testing::StepTreesPath(out, s);
    auto trees = ReadTreeFile(name);
    ASSERT_TRUE(trees.ok()) << trees.status().ToString();
    ASSERT_EQ(trees->size(), static_cast<size_t>(kQueries)) << name;
    for (const TreeRecord& t : *trees) {
      EXPECT_TRUE(t.Validate().ok()) << name << ": " << t.Validate().ToString();
      EXPECT_EQ(t.leaves.size(), static_cast<size_t>(kWidth)) << name << " " << t.query_id;
      for (const TreeNodeRecord& n : t.nodes) {
        EXPECT_EQ(real.count(n.worker), 1u) << name << " node " << n.id << " worker " << n.worker;
        for (int32_t tok : n.tokens) {
          ASSERT_TRUE(tok >= 0 && tok < vocab) << name << " node " << n.id << " token " << tok;
        }
      }
    }
  }
}

}  // namespace
}  // namespace treepo

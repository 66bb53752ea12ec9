// Hostile and careless peers against real `treepo` processes on loopback: stray multipart
// messages, garbage and raw TCP bytes during a rollout, a worker name that is not UTF-8,
// and CURVE keys (unkeyed and unknown clients, roles, a second learner, the loopback rule,
// `insecure`, a keyed rollout end to end). Needs the stories260K model ($TREEPO_SHARED_DIR)
// and the binary ($TREEPO_BINARY_DIR/cluster/treepo).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cluster/child_process.h"
#include "common/testing/paths.h"
#include "common/tree/tree_record.h"
#include "protocols/codec.h"
#include "protocols/curve_keys.h"
#include "protocols/transport.h"
#include "tests/e2e_chaos/e2e_util.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;
namespace pr = protocols;
using Clock = std::chrono::steady_clock;
using cluster::ChildProcess;
using testing::ReadAll;
using testing::WaitForText;

// Starts `argv` with stdout and stderr in `log` (killed, if still running, when it goes).
ChildProcess Start(const std::vector<std::string>& argv, const std::string& log) {
  Result<ChildProcess> c = ChildProcess::Spawn(argv, log);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : ChildProcess();
}

// The exit code (128 + signal when killed), or -1 when still running after `ms`.
int WaitExit(ChildProcess& c, int ms) { return c.Wait(ms) ? c.exit_code() : -1; }

std::vector<uint8_t> Frame(pr::Payload payload, uint32_t sender = 0, uint64_t epoch = 0) {
  pr::Message m;
  m.sender = sender;
  m.epoch = epoch;
  m.payload = std::move(payload);
  return pr::Encode(m);
}

// The next message `dealer` gets within `ms`, decoded; nullopt when none came.
std::optional<pr::Message> NextReply(pr::Dealer& dealer, int ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < deadline) {
    auto r = dealer.Recv(50);
    if (!r.ok()) return std::nullopt;
    if (!*r) continue;
    auto m = pr::Decode(**r);
    if (m.ok()) return std::move(*m);
  }
  return std::nullopt;
}

// Writes `bytes` to the TCP port of `endpoint` ("tcp://127.0.0.1:P") and closes.
void WriteRawTcp(const std::string& endpoint, const std::vector<uint8_t>& bytes) {
  const int port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the peer closed on us: fine, that is its answer to garbage
    off += static_cast<size_t>(n);
  }
  close(fd);
}

class SecurityE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path shared = testing::SharedDir();
    binary_ = testing::TreepoBinary();
    model_ = (shared / "models/stories260K/stories260K.bin").string();
    tokenizer_ = (shared / "models/stories260K/tok512.bin").string();
    if (!fs::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    if (!fs::exists(model_)) GTEST_SKIP() << "needs " << model_;
    dir_ = testing::FreshTempDir(std::string("security_e2e_") +
                                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    prompts_ = (dir_ / "prompts.jsonl").string();
    std::ofstream p(prompts_);
    const char* texts[] = {"Once upon a time", "The little dog", "One day, a cat"};
    for (int i = 0; i < 3; ++i) {
      p << "{\"id\": \"q" << i << "\", \"prompt\": \"" << texts[i] << "\", \"answer\": \"" << i
        << "\"}\n";
    }
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // A scheduler config for a small rollout; `extra` appended (TOML lines).
  // Without `with_model` the scheduler does not know the model (vocab_size instead) and
  // checks no fingerprint.
  std::string Config(int min_workers, const std::string& extra, bool with_model = true) const {
    std::ostringstream c;
    if (with_model) {
      c << "model = \"" << model_ << "\"\n";
    } else {
      c << "vocab_size = 512\n";
    }
    c << "tokenizer = \"" << tokenizer_ << "\"\nprompts = \"" << prompts_ << "\"\nout = \""
      << Path("trees.jsonl") << "\"\nsummary_out = \"" << Path("summary.json")
      << "\"\nwidth = 4\nsegment_tokens = 8\nmax_depth = 3\n"
      << "seed = 5\nmin_workers = " << min_workers << "\nprogress = false\n"
      << "heartbeat_interval_ms = 100\nheartbeat_timeout_ms = 2000\n"
      << extra;
    return c.str();
  }

  // Starts `treepo scheduler`; returns its endpoint, or "" (and the log in *log) on failure.
  std::string StartScheduler(const std::string& config, std::unique_ptr<ChildProcess>* proc) {
    std::ofstream(Path("scheduler.toml")) << config;
    const std::string ep = Path("endpoint");
    fs::remove(ep);
    *proc = std::make_unique<ChildProcess>(
        Start(std::vector<std::string>{binary_, "scheduler", "--config", Path("scheduler.toml"),
                                       "--endpoint-file", ep},
              Path("scheduler.log")));
    if (!WaitForText(ep, "tcp://", 20000)) return "";
    std::string s = ReadAll(ep);
    s.erase(s.find_last_not_of("\n") + 1);
    return s;
  }

  // `treepo keys --out DIR --role NAME`; its exit code.
  int MakeKeys(const std::string& dir, const std::string& role) {
    ChildProcess p =
        Start({binary_, "keys", "--out", dir, "--role", role}, Path("keys-" + role + ".log"));
    return WaitExit(p, 20000);
  }

  void ExpectTrees(size_t queries, int width) {
    auto trees = ReadTreeFile(Path("trees.jsonl"));
    ASSERT_TRUE(trees.ok()) << trees.status().ToString();
    ASSERT_EQ(trees->size(), queries);
    for (const TreeRecord& t : *trees) {
      EXPECT_TRUE(t.Validate().ok()) << t.Validate().ToString();
      EXPECT_EQ(t.leaves.size(), static_cast<size_t>(width));
    }
  }

  fs::path dir_;
  std::string binary_, model_, tokenizer_, prompts_;
};

TEST_F(SecurityE2eTest, StrayMultipartGarbageAndRawTcpDoNotEndARollout) {
  std::unique_ptr<ChildProcess> sched;
  const std::string ep = StartScheduler(Config(1, ""), &sched);
  ASSERT_FALSE(ep.empty()) << ReadAll(Path("scheduler.log"));

  pr::Context ctx;
  pr::DealerOptions o;
  o.identity = std::string("\x01stray\xff", 7);
  auto stray = pr::Dealer::Connect(ctx, ep, o);
  ASSERT_TRUE(stray.ok()) << stray.status().ToString();
  pr::Heartbeat hb;
  hb.worker_id = WorkerId(1);
  hb.epoch = 1;
  const std::vector<uint8_t> good = Frame(hb, 1, 1);
  ASSERT_TRUE(stray->SendParts({good, good, good}).ok());                 // 3 frames
  ASSERT_TRUE(stray->SendParts({{}, {1, 2, 3}}).ok());                    // empty + garbage
  ASSERT_TRUE(stray->Send(std::vector<uint8_t>{0xde, 0xad, 0xbe}).ok());  // garbage
  // Someone else's multipart message is still answered: the peer is told.
  std::optional<pr::Message> reply = NextReply(*stray, 10000);
  ASSERT_TRUE(reply.has_value());
  ASSERT_NE(reply->get_if<pr::ErrorReply>(), nullptr);
  EXPECT_EQ(reply->get_if<pr::ErrorReply>()->code, StatusCode::kInvalidArgument);

  std::mt19937 rng(7);
  for (int i = 0; i < 5; ++i) {
    std::vector<uint8_t> junk(64 << i);
    for (uint8_t& b : junk) b = static_cast<uint8_t>(rng());
    if (i == 0) junk[0] = 0xff;  // starts like a ZMTP greeting
    WriteRawTcp(ep, junk);
  }
  // Still serving: a worker joins and the rollout completes while the stray keeps sending.
  ChildProcess w = Start({binary_, "worker", "--scheduler", ep, "--model", model_}, Path("w.log"));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(stray->SendParts({good, {9}}).ok());
  ASSERT_EQ(WaitExit(*sched, 60000), 0) << ReadAll(Path("scheduler.log"));
  EXPECT_EQ(WaitExit(w, 10000), 0) << ReadAll(Path("w.log"));
  ExpectTrees(3, 4);
  const std::string log = ReadAll(Path("scheduler.log"));
  EXPECT_NE(log.find("(multipart)"), std::string::npos) << log;
  // The identity is printed in hex, never as raw bytes; and once per peer, not per message.
  EXPECT_NE(log.find("0x017374726179ff"), std::string::npos) << log;
  EXPECT_EQ(log.find("\x01stray"), std::string::npos);
  size_t lines = 0;
  for (size_t at = log.find("0x0173"); at != std::string::npos; at = log.find("0x0173", at + 1)) {
    ++lines;
  }
  EXPECT_LE(lines, 5u) << log;
}

TEST_F(SecurityE2eTest, NonUtf8WorkerNameIsRejectedAndTheSummaryIsWritten) {
  std::unique_ptr<ChildProcess> sched;
  const std::string ep = StartScheduler(Config(1, ""), &sched);
  ASSERT_FALSE(ep.empty()) << ReadAll(Path("scheduler.log"));
  pr::Context ctx;
  pr::DealerOptions o;
  o.identity = "bad-name";
  auto d = pr::Dealer::Connect(ctx, ep, o);
  ASSERT_TRUE(d.ok());
  pr::RegisterWorker reg{"w\xff\xfe", 1, 64, 16, 0};
  ASSERT_TRUE(d->Send(Frame(reg)).ok());
  std::optional<pr::Message> reply = NextReply(*d, 10000);
  ASSERT_TRUE(reply.has_value());
  const auto* err = reply->get_if<pr::ErrorReply>();
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->code, StatusCode::kInvalidArgument);
  EXPECT_NE(err->message.find("UTF-8"), std::string::npos) << err->message;
  // A worker of another model is refused too (its fingerprint does not match).
  pr::RegisterWorker other{"other-model", 1, 64, 16, 12345};
  ASSERT_TRUE(d->Send(Frame(other)).ok());
  reply = NextReply(*d, 10000);
  ASSERT_TRUE(reply.has_value());
  ASSERT_NE(reply->get_if<pr::ErrorReply>(), nullptr);
  EXPECT_NE(reply->get_if<pr::ErrorReply>()->message.find("another model"), std::string::npos);

  // `treepo worker --name` refuses such a name itself, with a clear error.
  ChildProcess bad =
      Start({binary_, "worker", "--scheduler", ep, "--model", model_, "--name", "w\xff"},
            Path("bad.log"));
  EXPECT_EQ(WaitExit(bad, 30000), 1);
  EXPECT_NE(ReadAll(Path("bad.log")).find("not valid UTF-8"), std::string::npos)
      << ReadAll(Path("bad.log"));

  ChildProcess w = Start({binary_, "worker", "--scheduler", ep, "--model", model_}, Path("w.log"));
  ASSERT_EQ(WaitExit(*sched, 60000), 0) << ReadAll(Path("scheduler.log"));
  EXPECT_EQ(WaitExit(w, 10000), 0);
  ExpectTrees(3, 4);
  const nlohmann::json summary = nlohmann::json::parse(ReadAll(Path("summary.json")), nullptr,
                                                       /*allow_exceptions=*/false);
  ASSERT_FALSE(summary.is_discarded());
  EXPECT_EQ(summary["queries"], 3);
}

TEST_F(SecurityE2eTest, KeysCommandWritesAPrivateKeyAndNeverOverwrites) {
  const std::string keys = Path("keys");
  ASSERT_EQ(MakeKeys(keys, "scheduler"), 0) << ReadAll(Path("keys-scheduler.log"));
  struct stat st {};
  ASSERT_EQ(stat((keys + "/scheduler.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto pair = pr::ReadKeyPairFile(keys + "/scheduler.key");
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto pub = pr::ReadPublicKeyFile(keys + "/scheduler.pub");
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(*pub, pair->public_key);
  EXPECT_EQ(MakeKeys(keys, "scheduler"), 1);
  EXPECT_NE(ReadAll(Path("keys-scheduler.log")).find("not overwriting"), std::string::npos);
  // A key file others may read is refused.
  chmod((keys + "/scheduler.key").c_str(), 0644);
  EXPECT_EQ(pr::ReadKeyPairFile(keys + "/scheduler.key").status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(SecurityE2eTest, KeyedSchedulerAdmitsOnlyItsKeysInTheirRoles) {
  const std::string keys = Path("keys");
  for (const char* role : {"scheduler", "worker-1", "learner"}) {
    ASSERT_EQ(MakeKeys(keys, role), 0) << role;
  }
  fs::create_directories(Path("workers"));
  fs::copy_file(keys + "/worker-1.pub", Path("workers/worker-1.pub"));
  std::unique_ptr<ChildProcess> sched;
  const std::string ep =
      StartScheduler(Config(1,
                            "key = \"" + keys + "/scheduler.key\"\nworker_keys = \"" +
                                Path("workers") + "\"\nlearner_keys = \"" + keys +
                                "/learner.pub\"\n"
                                "wait_workers_timeout_ms = 60000\n",
                            /*with_model=*/false),
                     &sched);
  ASSERT_FALSE(ep.empty()) << ReadAll(Path("scheduler.log"));
  auto server = pr::ReadPublicKeyFile(keys + "/scheduler.pub");
  auto worker_pair = pr::ReadKeyPairFile(keys + "/worker-1.key");
  auto learner_pair = pr::ReadKeyPairFile(keys + "/learner.key");
  auto stranger = pr::GenerateCurveKeyPair();
  ASSERT_TRUE(server.ok() && worker_pair.ok() && learner_pair.ok() && stranger.ok());

  pr::Context ctx;
  auto connect = [&](const std::string& id, std::optional<pr::CurveKeyPair> pair) {
    pr::DealerOptions o;
    o.identity = id;
    if (pair) o.curve = pr::CurveClientKeys{*server, *pair};
    auto d = pr::Dealer::Connect(ctx, ep, o);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return std::move(*d);
  };
  pr::RegisterWorker reg{"w", 1, 64, 16, 0};
  pr::RegisterLearner lreg{"l", 0, 1, 0};

  // Keyed clients in their roles are admitted.
  pr::Dealer worker = connect("worker", *worker_pair);
  ASSERT_TRUE(worker.Send(Frame(reg)).ok());
  std::optional<pr::Message> r = NextReply(worker, 10000);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->get_if<pr::RegisterAck>(), nullptr);
  pr::Dealer learner = connect("learner", *learner_pair);
  ASSERT_TRUE(learner.Send(Frame(lreg)).ok());
  r = NextReply(learner, 10000);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->get_if<pr::RegisterAck>(), nullptr);

  // A worker key cannot register as a learner.
  pr::Dealer posing = connect("posing", *worker_pair);
  ASSERT_TRUE(posing.Send(Frame(lreg)).ok());
  r = NextReply(posing, 10000);
  ASSERT_TRUE(r.has_value());
  ASSERT_NE(r->get_if<pr::ErrorReply>(), nullptr);
  EXPECT_EQ(r->get_if<pr::ErrorReply>()->code, StatusCode::kInvalidArgument);
  EXPECT_NE(r->get_if<pr::ErrorReply>()->message.find("not a learner key"), std::string::npos);

  // A second learner (the learner key again) is refused while the first is connected.
  pr::Dealer second = connect("learner-2", *learner_pair);
  ASSERT_TRUE(second.Send(Frame(lreg)).ok());
  r = NextReply(second, 10000);
  ASSERT_TRUE(r.has_value());
  ASSERT_NE(r->get_if<pr::ErrorReply>(), nullptr);
  EXPECT_EQ(r->get_if<pr::ErrorReply>()->code, StatusCode::kAlreadyExists);

  // An unknown key and a client without keys get nothing at all: the handshake fails.
  pr::Dealer unknown = connect("unknown", *stranger);
  pr::Dealer plain = connect("plain", std::nullopt);
  ASSERT_TRUE(unknown.Send(Frame(reg)).ok());
  ASSERT_TRUE(plain.Send(Frame(reg)).ok());
  EXPECT_TRUE(WaitForText(Path("scheduler.log"), "unknown key", 10000))
      << ReadAll(Path("scheduler.log"));
  EXPECT_FALSE(NextReply(unknown, 1500).has_value());
  EXPECT_FALSE(NextReply(plain, 100).has_value());
  const std::string log = ReadAll(Path("scheduler.log"));
  EXPECT_EQ(log.find("worker 3"), std::string::npos) << log;  // nobody else registered
}

TEST_F(SecurityE2eTest, NonLoopbackBindNeedsKeysOrInsecure) {
  std::ofstream(Path("open.toml")) << Config(1, "bind = \"tcp://0.0.0.0:*\"\n");
  ChildProcess refused =
      Start({binary_, "scheduler", "--config", Path("open.toml")}, Path("refused.log"));
  EXPECT_EQ(WaitExit(refused, 30000), 1);
  EXPECT_NE(ReadAll(Path("refused.log")).find("reachable from the network"), std::string::npos)
      << ReadAll(Path("refused.log"));

  std::ofstream(Path("insecure.toml"))
      << Config(1, "bind = \"tcp://0.0.0.0:*\"\ninsecure = true\nwait_workers_timeout_ms = 500\n");
  ChildProcess warned =
      Start({binary_, "scheduler", "--config", Path("insecure.toml")}, Path("insecure.log"));
  WaitExit(warned, 30000);  // it gives up waiting for workers
  EXPECT_NE(ReadAll(Path("insecure.log")).find("INSECURE"), std::string::npos)
      << ReadAll(Path("insecure.log"));

  // A worker will not talk to a scheduler off loopback without keys either.
  ChildProcess worker =
      Start({binary_, "worker", "--scheduler", "tcp://0.0.0.0:5555", "--model", model_},
            Path("worker.log"));
  EXPECT_EQ(WaitExit(worker, 30000), 1);
  EXPECT_NE(ReadAll(Path("worker.log")).find("not on loopback"), std::string::npos)
      << ReadAll(Path("worker.log"));
}

TEST_F(SecurityE2eTest, RolloutWithCurveKeysWorksEndToEnd) {
  ChildProcess p = Start({binary_,     "rollout",     "--model", model_,  "--tokenizer",
                          tokenizer_,  "--prompts",   prompts_,  "--out", Path("trees.jsonl"),
                          "--workers", "2",           "--width", "4",     "--segment-tokens",
                          "8",         "--max-depth", "3",       "--set", "progress=false",
                          "--set",     "curve=true"},
                         Path("rollout.log"));
  ASSERT_EQ(WaitExit(p, 60000), 0) << ReadAll(Path("rollout.log"));
  EXPECT_NE(ReadAll(Path("rollout.log")).find("CURVE on: 1 worker and 1 learner keys"),
            std::string::npos)
      << ReadAll(Path("rollout.log"));
  ExpectTrees(3, 4);
}

TEST_F(SecurityE2eTest, TrainWithCurveKeysRunsSteps) {
  const std::string base = Path("base");
  ChildProcess pretrain = Start(
      {binary_,      "pretrain", "--out",         base,  "--steps",  "10",  "--batch",         "8",
       "--dim",      "32",       "--hidden",      "64",  "--layers", "1",   "--heads",         "2",
       "--kv-heads", "2",        "--max-seq-len", "128", "--corpus", "100", "--eval-problems", "0",
       "--threads",  "1"},
      Path("pretrain.log"));
  ASSERT_EQ(WaitExit(pretrain, 120000), 0) << ReadAll(Path("pretrain.log"));
  const std::string out = Path("run");
  ChildProcess train = Start({binary_, "train",
                              "--set", "model.base=" + base,
                              "--set", "out_dir=" + out,
                              "--set", "steps=2",
                              "--set", "rollout.queries_per_step=2",
                              "--set", "rollout.width=2",
                              "--set", "rollout.segment_tokens=8",
                              "--set", "rollout.max_depth=2",
                              "--set", "task.train_problems=20",
                              "--set", "eval.before=false",
                              "--set", "eval.after=false",
                              "--set", "output.progress=false",
                              "--set", "cluster.worker_pages=256",
                              "--set", "scheduler.curve=true"},
                             Path("train.log"));
  ASSERT_EQ(WaitExit(train, 180000), 0) << ReadAll(Path("train.log"));
  EXPECT_NE(ReadAll(Path("train.log")).find("CURVE on: 1 worker and 1 learner keys"),
            std::string::npos)
      << ReadAll(Path("train.log"));
  const nlohmann::json summary = nlohmann::json::parse(ReadAll(out + "/summary.json"), nullptr,
                                                       /*allow_exceptions=*/false);
  ASSERT_FALSE(summary.is_discarded());
  EXPECT_EQ(summary["final_version"], 2);
}

}  // namespace
}  // namespace treepo

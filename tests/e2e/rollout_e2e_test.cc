// Distributed rollout end to end, with real processes on loopback: `treepo rollout` (scheduler
// in process, worker child processes), `treepo scheduler` + `treepo worker` started here (to
// SIGKILL a worker mid-rollout), and a raw Dealer sending malformed frames. Needs the
// stories260K model ($TREEPO_SHARED_DIR) and the binary ($TREEPO_BINARY_DIR/cluster/treepo).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/tree/tree_record.h"
#include "protocols/codec.h"
#include "protocols/transport.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// A child process with stdout and stderr in `log`; killed (SIGKILL) when still running at
// destruction.
class Proc {
 public:
  Proc(const std::vector<std::string>& argv, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Proc() {
    if (exit_code_ < 0 && pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  void Kill() { kill(pid_, SIGKILL); }
  void Signal(int signal) { kill(pid_, signal); }
  // Waits for exit up to `ms`; the exit code (128 + signal when killed), or -1 on timeout.
  int Wait(int ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    while (exit_code_ < 0) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        break;
      }
      if (Clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll the exit, bounded
    }
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits (bounded) until `path` exists and contains `needle`.
bool WaitForText(const std::string& path, const std::string& needle, int ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < deadline) {
    if (ReadAll(path).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

class RolloutE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string source = Env("TREEPO_SOURCE_DIR", ".");
    const fs::path shared = Env("TREEPO_SHARED_DIR", source + "/../shared");
    binary_ = Env("TREEPO_BINARY_DIR", "") + "/cluster/treepo";
    model_ = (shared / "models/stories260K/stories260K.bin").string();
    tokenizer_ = (shared / "models/stories260K/tok512.bin").string();
    if (!fs::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    if (!fs::exists(model_)) GTEST_SKIP() << "needs " << model_;
    dir_ = fs::temp_directory_path() /
           ("treepo_rollout_e2e_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    prompts_ = (dir_ / "prompts.jsonl").string();
    std::ofstream p(prompts_);
    const char* texts[] = {"Once upon a time", "The little dog", "Lily and Tom went to the park",
                           "One day, a cat",   "The sun was",    "Tim had a red ball"};
    for (int i = 0; i < 6; ++i) {
      p << "{\"id\": \"q" << i << "\", \"prompt\": \"" << texts[i] << "\", \"answer\": \"" << i
        << "\"}\n";
    }
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Runs `treepo rollout` with `extra` flags; returns its exit code; trees in *trees and
  // the summary in summary_.
  int Rollout(const std::vector<std::string>& extra, std::vector<TreeRecord>* trees) {
    const std::string out = (dir_ / "trees.jsonl").string();
    std::string summary = (dir_ / "summary.json").string();
    fs::remove(out);
    std::vector<std::string> argv = {binary_,       "rollout",  "--model",   model_,
                                     "--tokenizer", tokenizer_, "--prompts", prompts_,
                                     "--out",       out,        "--set",     "progress=false"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto given = std::find(extra.begin(), extra.end(), "--summary-out");
    if (given != extra.end() && given + 1 != extra.end()) {
      summary = *(given + 1);
    } else {
      argv.insert(argv.end(), {"--summary-out", summary});
    }
    fs::remove(summary);
    Proc p(argv, (dir_ / "rollout.log").string());
    const int rc = p.Wait(240000);  // a bound for sanitizer builds on a loaded machine
    if (rc == 0) {
      summary_ = nlohmann::json::parse(ReadAll(summary), nullptr, false);
      auto t = ReadTreeFile(out);
      EXPECT_TRUE(t.ok()) << t.status().ToString();
      if (t.ok()) *trees = std::move(*t);
    } else {
      ADD_FAILURE() << ReadAll((dir_ / "rollout.log").string());
    }
    return rc;
  }

  // The trees in `out` (from a scheduler started with Config(...)) are valid and the same as an
  // undisturbed one-worker `treepo rollout` with the same settings.
  void ExpectTreesOfAnUndisturbedRun(const std::string& out);
  void KillTheFirstWorkerMidRollout(int workers, const std::string& extra);

  fs::path dir_;
  std::string binary_, model_, tokenizer_, prompts_;
  nlohmann::json summary_;
};

// Every query has exactly `width` leaves and every path is consistent.
void CheckTrees(const std::vector<TreeRecord>& trees, size_t queries, int width) {
  ASSERT_EQ(trees.size(), queries);
  for (const TreeRecord& t : trees) {
    ASSERT_TRUE(t.Validate().ok()) << t.Validate().ToString();
    EXPECT_EQ(t.leaves.size(), static_cast<size_t>(width)) << t.query_id;
    EXPECT_FALSE(t.prompt_tokens.empty());
    for (const TreeLeafRecord& leaf : t.leaves) {
      const std::vector<uint64_t> path = t.PathTo(leaf.node);
      ASSERT_FALSE(path.empty());
      std::vector<int32_t> concat;
      int depth = 0;
      for (uint64_t id : path) {
        auto it = std::find_if(t.nodes.begin(), t.nodes.end(),
                               [&](const TreeNodeRecord& n) { return n.id == id; });
        ASSERT_NE(it, t.nodes.end());
        EXPECT_EQ(it->depth, ++depth);
        EXPECT_NE(it->worker, 0u);
        concat.insert(concat.end(), it->tokens.begin(), it->tokens.end());
      }
      ASSERT_LE(leaf.response_tokens, static_cast<int>(concat.size()));
      concat.resize(leaf.response_tokens);
      EXPECT_EQ(t.ResponseTokens(leaf), concat);
    }
  }
}

// A node as compared across runs: id, parent, depth, tokens and the log-probs' bits.
using CanonNode =
    std::tuple<uint64_t, uint64_t, int, std::vector<int32_t>, std::vector<uint32_t>, std::string>;

// Trees compared bitwise: every node (id, parent, depth, tokens, log-probs, finish) and the
// leaves in order. Only the worker that computed a node may differ.
std::vector<std::pair<std::vector<CanonNode>, std::vector<uint64_t>>> Canon(
    const std::vector<TreeRecord>& trees) {
  std::vector<std::pair<std::vector<CanonNode>, std::vector<uint64_t>>> out;
  for (const TreeRecord& t : trees) {
    out.emplace_back();
    for (const TreeNodeRecord& n : t.nodes) {
      std::vector<uint32_t> bits(n.logprobs.size());
      std::memcpy(bits.data(), n.logprobs.data(), bits.size() * sizeof(uint32_t));
      out.back().first.emplace_back(n.id, n.parent.value_or(0), n.depth, n.tokens, bits,
                                    FinishReasonName(n.finish));
    }
    std::sort(out.back().first.begin(), out.back().first.end());
    for (const TreeLeafRecord& l : t.leaves) out.back().second.push_back(l.node);
  }
  return out;
}

// Where two runs differ first (for failure messages).
std::string FirstDifference(const std::vector<TreeRecord>& a, const std::vector<TreeRecord>& b) {
  const auto ca = Canon(a), cb = Canon(b);
  if (ca.size() != cb.size()) return "different numbers of trees";
  for (size_t t = 0; t < ca.size(); ++t) {
    if (ca[t].second != cb[t].second) return "tree " + std::to_string(t) + ": leaves differ";
    if (ca[t].first.size() != cb[t].first.size()) {
      return "tree " + std::to_string(t) + ": node counts differ";
    }
    for (size_t i = 0; i < ca[t].first.size(); ++i) {
      const CanonNode &x = ca[t].first[i], &y = cb[t].first[i];
      if (x == y) continue;
      std::ostringstream os;
      os << "tree " << t << " node " << std::get<0>(x) << " vs " << std::get<0>(y) << ": "
         << (std::get<3>(x) != std::get<3>(y)   ? "tokens"
             : std::get<4>(x) != std::get<4>(y) ? "log-probs"
                                                : "id/parent/depth/finish")
         << " differ";
      return os.str();
    }
  }
  return "none";
}

const std::vector<std::string> kSmall = {"--width",     "4", "--segment-tokens", "8",
                                         "--max-depth", "3", "--seed",           "11"};

TEST_F(RolloutE2eTest, TreeModeTwoWorkersGivesWidthLeavesAndMatchesOneWorker) {
  std::vector<TreeRecord> two, one;
  std::vector<std::string> a = kSmall;
  a.insert(a.end(), {"--workers", "2", "--mode", "tree"});
  ASSERT_EQ(Rollout(a, &two), 0);
  CheckTrees(two, 6, 4);
  std::vector<std::string> b = kSmall;
  b.insert(b.end(), {"--workers", "1", "--mode", "tree"});
  ASSERT_EQ(Rollout(b, &one), 0);
  CheckTrees(one, 6, 4);
  EXPECT_EQ(Canon(one), Canon(two));
}

// The same seed gives the same trees, bitwise (tokens, log-probs, node ids, parents), with 1, 2
// and 3 workers, other page sizes and thread counts, in tree and sequential modes: the
// engine's numerics are batch-invariant and sequential node ids follow the sample index.
TEST_F(RolloutE2eTest, SameSeedSameTreesBitwiseWithOneTwoOrThreeWorkers) {
  const std::vector<std::string> base = {
      "--width", "16", "--segment-tokens",         "8", "--max-depth", "4",
      "--seed",  "5",  "--max-concurrent-queries", "6"};
  // Each variant: its flags, and the placement counter it must have moved (if any).
  const std::vector<std::pair<std::vector<std::string>, std::string>> variants = {
      {{"--workers", "1"}, ""},
      {{"--workers", "2", "--set", "page_size=4"}, ""},
      {{"--workers", "3", "--set", "worker_threads=2"}, ""},
      // Every 2nd task's parent migrates to another worker with its KV pages.
      {{"--workers", "2", "--set", "debug_migrate_every=2"}, "kv_migrations"},
      // KV pools so small that tasks wait for pages and idle nodes are evicted and recomputed.
      {{"--workers", "2", "--worker-pages", "16"}, "tasks_waited"},
  };
  for (const std::string mode : {"tree", "sequential"}) {
    std::vector<TreeRecord> first;
    for (size_t v = 0; v < variants.size(); ++v) {
      const auto& [flags, counter] = variants[v];
      std::string name;
      for (const std::string& f : flags) name += f + " ";
      std::vector<std::string> args = base;
      args.insert(args.end(), {"--mode", mode});
      args.insert(args.end(), flags.begin(), flags.end());
      std::vector<TreeRecord> trees;
      ASSERT_EQ(Rollout(args, &trees), 0) << mode << " " << name;
      CheckTrees(trees, 6, 16);
      if (!counter.empty()) {
        EXPECT_GT(summary_.value(counter, int64_t{0}), 0) << mode << " " << name << summary_;
      }
      if (v == 0) {
        first = std::move(trees);
        continue;
      }
      EXPECT_TRUE(Canon(first) == Canon(trees))
          << mode << ", 1 worker vs " << name << ": " << FirstDifference(first, trees);
    }
  }
}

// The prompt is a node: prefilled once per query on one worker and forked by every root task
// and refill, so with one worker each prompt is computed once, and with several the tokens
// computed stay within 2% of the unique tokens (every node's tokens plus each prompt once).
TEST_F(RolloutE2eTest, EachPromptIsPrefilledOnceAndComputedStaysNearUnique) {
  const std::vector<std::string> base = {"--width",     "16",  "--segment-tokens", "8",
                                         "--max-depth", "4",   "--seed",           "5",
                                         "--mode",      "tree"};
  for (const std::string workers : {"1", "2"}) {
    std::vector<std::string> args = base;
    args.insert(args.end(), {"--workers", workers});
    std::vector<TreeRecord> trees;
    ASSERT_EQ(Rollout(args, &trees), 0);
    int64_t prompt_positions = 0;
    for (const TreeRecord& t : trees) prompt_positions += t.prompt_tokens.size() - 1;
    if (workers == "1") EXPECT_EQ(summary_["tokens_prefilled"], prompt_positions) << summary_;
    EXPECT_LE(summary_["computed_over_unique"].get<double>(), 1.02) << summary_;
    EXPECT_EQ(summary_["tokens_recomputed"], 0) << summary_;
  }
}

TEST_F(RolloutE2eTest, SequentialModeGivesWidthLeaves) {
  std::vector<TreeRecord> trees;
  std::vector<std::string> a = kSmall;
  a.insert(a.end(), {"--workers", "2", "--mode", "sequential"});
  ASSERT_EQ(Rollout(a, &trees), 0);
  CheckTrees(trees, 6, 4);
}

// A prompt too long for the model's context (stories260K: 512 positions) among normal ones is
// skipped with a warning and counted; the others roll out as usual. The 20 KB prompt is
// tokenized before the scheduler's loop starts (tokenizing it on the loop with a quadratic
// encoder stalled heartbeats until the worker gave up).
TEST_F(RolloutE2eTest, AnOverLongPromptIsSkippedAndCounted) {
  {
    std::ofstream p(prompts_);
    const char* texts[] = {"Once upon a time", "The little dog", "Lily and Tom went to the park"};
    for (int i = 0; i < 3; ++i) {
      p << "{\"id\": \"q" << i << "\", \"prompt\": \"" << texts[i] << "\", \"answer\": \"1\"}\n";
      if (i == 1) {
        std::string longer;
        while (longer.size() < 20000) longer += "The sun was big and the dog ran to the park. ";
        p << "{\"id\": \"long\", \"prompt\": \"" << longer << "\"}\n";
      }
    }
  }
  const std::string summary = (dir_ / "summary.json").string();
  std::vector<TreeRecord> trees;
  std::vector<std::string> a = kSmall;
  a.insert(a.end(), {"--workers", "1", "--summary-out", summary});
  ASSERT_EQ(Rollout(a, &trees), 0);
  CheckTrees(trees, 3, 4);
  EXPECT_EQ(trees[0].query_id, "q0");
  EXPECT_EQ(trees[1].query_id, "q1");
  EXPECT_EQ(trees[2].query_id, "q2");
  const std::string text = ReadAll(summary);
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << text;
  EXPECT_EQ(j.value("prompts_skipped", -1), 1) << text;
  EXPECT_EQ(j.value("queries", -1), 3) << text;
  const std::string log = ReadAll((dir_ / "rollout.log").string());
  EXPECT_NE(log.find("prompt index 2 (id 'long'"), std::string::npos) << log;
}

TEST_F(RolloutE2eTest, UnknownConfigKeyIsAnError) {
  Proc p({binary_, "rollout", "--model", model_, "--tokenizer", tokenizer_, "--prompts", prompts_,
          "--set", "widht=3"},
         (dir_ / "bad.log").string());
  EXPECT_EQ(p.Wait(30000), 1);
  EXPECT_NE(ReadAll((dir_ / "bad.log").string()).find("widht"), std::string::npos);
}

void RolloutE2eTest::ExpectTreesOfAnUndisturbedRun(const std::string& out) {
  auto trees = ReadTreeFile(out);
  ASSERT_TRUE(trees.ok()) << trees.status().ToString();
  CheckTrees(*trees, 6, 8);
  std::vector<TreeRecord> one;
  ASSERT_EQ(Rollout({"--workers", "1", "--width", "8", "--segment-tokens", "16", "--max-depth", "4",
                     "--seed", "3", "--max-concurrent-queries", "6"},
                    &one),
            0);
  EXPECT_EQ(Canon(*trees), Canon(one));
}

// Starts `treepo scheduler` with a config and returns its endpoint (empty on failure).
std::string StartScheduler(const fs::path& dir, const std::string& binary,
                           const std::string& config, std::unique_ptr<Proc>* proc) {
  const std::string cfg = (dir / "scheduler.toml").string();
  std::ofstream(cfg) << config;
  const std::string ep = (dir / "endpoint").string();
  *proc = std::make_unique<Proc>(
      std::vector<std::string>{binary, "scheduler", "--config", cfg, "--endpoint-file", ep},
      (dir / "scheduler.log").string());
  if (!WaitForText(ep, "tcp://", 20000)) return "";
  std::string s = ReadAll(ep);
  s.erase(s.find_last_not_of("\n") + 1);
  return s;
}

std::string Config(const std::string& model, const std::string& tok, const std::string& prompts,
                   const std::string& out, int min_workers) {
  std::ostringstream c;
  c << "model = \"" << model << "\"\ntokenizer = \"" << tok << "\"\nprompts = \"" << prompts
    << "\"\nout = \"" << out << "\"\nwidth = 8\nsegment_tokens = 16\nmax_depth = 4\n"
    << "seed = 3\nmin_workers = " << min_workers << "\nmax_concurrent_queries = 6\n"
    << "heartbeat_interval_ms = 100\nheartbeat_timeout_ms = 1000\n";
  return c.str();
}

// Starts `treepo scheduler` (Config(...) + `extra`) and `workers` workers, SIGKILLs the first
// once it delivered results, and expects the rollout to finish with the trees of an
// undisturbed one-worker run.
void RolloutE2eTest::KillTheFirstWorkerMidRollout(int workers, const std::string& extra) {
  const std::string out = (dir_ / "trees.jsonl").string();
  std::unique_ptr<Proc> sched;
  const std::string ep = StartScheduler(
      dir_, binary_, Config(model_, tokenizer_, prompts_, out, workers) + extra, &sched);
  ASSERT_FALSE(ep.empty()) << ReadAll((dir_ / "scheduler.log").string());
  auto start = [&](const std::string& name) {
    return std::make_unique<Proc>(std::vector<std::string>{binary_, "worker", "--scheduler", ep,
                                                           "--model", model_, "--name", name},
                                  (dir_ / (name + ".log")).string());
  };
  std::unique_ptr<Proc> victim = start("victim");
  ASSERT_TRUE(WaitForText((dir_ / "victim.log").string(), "registered as worker", 20000));
  std::vector<std::unique_ptr<Proc>> others;
  for (int i = 1; i < workers; ++i) others.push_back(start("w" + std::to_string(i + 1)));
  // The victim registered first: it is worker 1. Kill it once its first results are in.
  ASSERT_TRUE(WaitForText((dir_ / "scheduler.log").string(), "worker 1 delivered its first results",
                          20000));
  victim->Kill();
  EXPECT_EQ(victim->Wait(5000), 128 + SIGKILL);
  ASSERT_EQ(sched->Wait(240000), 0) << ReadAll((dir_ / "scheduler.log").string());
  for (auto& w : others) EXPECT_EQ(w->Wait(10000), 0);
  // Re-dispatched tasks were prefilled from the scheduler's tokens on the survivors: the trees
  // are still those of an undisturbed one-worker run.
  ExpectTreesOfAnUndisturbedRun(out);
}

TEST_F(RolloutE2eTest, SigkillOfAWorkerMidRolloutStillCompletes) {
  KillTheFirstWorkerMidRollout(2, "");
}

// Migrations forced on every task while a worker is killed mid-run: transfers to or from it
// are abandoned, their nodes recomputed from the scheduler's tokens, and the trees are those
// of an undisturbed run.
TEST_F(RolloutE2eTest, AWorkerKilledDuringMigrationsLosesNothing) {
  KillTheFirstWorkerMidRollout(3, "debug_migrate_every = 1\n");
}

// A worker paused past the heartbeat timeout is declared dead and its tasks re-dispatched; when
// it resumes, its old registration is fenced, and it drops that state and registers again. It
// is the only worker, so the rollout can only finish through the new registration.
TEST_F(RolloutE2eTest, AFencedWorkerRegistersAgainAndFinishesTheRollout) {
  const std::string out = (dir_ / "trees.jsonl").string();
  std::unique_ptr<Proc> sched;
  const std::string ep =
      StartScheduler(dir_, binary_, Config(model_, tokenizer_, prompts_, out, 1), &sched);
  ASSERT_FALSE(ep.empty()) << ReadAll((dir_ / "scheduler.log").string());
  const std::string wlog = (dir_ / "sleeper.log").string();
  Proc w({binary_, "worker", "--scheduler", ep, "--model", model_, "--name", "sleeper"}, wlog);
  ASSERT_TRUE(WaitForText((dir_ / "scheduler.log").string(), "worker 1 delivered its first results",
                          20000));
  w.Signal(SIGSTOP);
  const bool dead = WaitForText((dir_ / "scheduler.log").string(), "declared dead", 20000);
  w.Signal(SIGCONT);
  ASSERT_TRUE(dead) << ReadAll((dir_ / "scheduler.log").string());
  ASSERT_EQ(sched->Wait(240000), 0) << ReadAll((dir_ / "scheduler.log").string());
  EXPECT_EQ(w.Wait(10000), 0) << ReadAll(wlog);
  EXPECT_NE(ReadAll(wlog).find("registering again"), std::string::npos) << ReadAll(wlog);
  ExpectTreesOfAnUndisturbedRun(out);
}

TEST_F(RolloutE2eTest, MalformedFramesAreRejectedAndTheSchedulerKeepsServing) {
  const std::string out = (dir_ / "trees.jsonl").string();
  std::unique_ptr<Proc> sched;
  const std::string ep =
      StartScheduler(dir_, binary_, Config(model_, tokenizer_, prompts_, out, 1), &sched);
  ASSERT_FALSE(ep.empty()) << ReadAll((dir_ / "scheduler.log").string());

  protocols::Context ctx;
  protocols::DealerOptions o;
  o.identity = "intruder";
  auto dealer = protocols::Dealer::Connect(ctx, ep, o);
  ASSERT_TRUE(dealer.ok()) << dealer.status().ToString();
  protocols::Message hb;
  hb.payload = protocols::Heartbeat{WorkerId(7), 1};
  const std::vector<uint8_t> good = protocols::Encode(hb);
  protocols::Message v2 = hb;
  v2.version = protocols::kProtocolVersion + 1;
  const std::vector<std::vector<uint8_t>> frames = {
      {1, 2, 3, 4, 5, 6, 7},                                               // garbage
      std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 2),  // truncated
      protocols::Encode(v2),                                               // wrong version
      good,  // well formed, but from an unregistered sender
  };
  for (const auto& f : frames) ASSERT_TRUE(dealer->Send(f).ok());
  std::vector<StatusCode> codes;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (codes.size() < frames.size() && Clock::now() < deadline) {
    auto r = dealer->Recv(100);
    ASSERT_TRUE(r.ok());
    if (!*r) continue;
    auto m = protocols::Decode(**r);
    ASSERT_TRUE(m.ok());
    const auto* e = m->get_if<protocols::ErrorReply>();
    ASSERT_NE(e, nullptr);
    codes.push_back(e->code);
  }
  EXPECT_EQ(codes,
            (std::vector<StatusCode>{StatusCode::kDataLoss, StatusCode::kDataLoss,
                                     StatusCode::kFailedPrecondition, StatusCode::kNotFound}));
  // Still serving: a worker joins and the rollout completes.
  Proc w({binary_, "worker", "--scheduler", ep, "--model", model_}, (dir_ / "w.log").string());
  ASSERT_EQ(sched->Wait(240000), 0) << ReadAll((dir_ / "scheduler.log").string());
  EXPECT_EQ(w.Wait(10000), 0);
  auto trees = ReadTreeFile(out);
  ASSERT_TRUE(trees.ok()) << trees.status().ToString();
  CheckTrees(*trees, 6, 8);
  EXPECT_NE(ReadAll((dir_ / "scheduler.log").string()).find("dropping bad frame"),
            std::string::npos);
}

}  // namespace
}  // namespace treepo

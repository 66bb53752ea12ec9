// dp_learner_bench: learner tokens/s with 1, 2 and 4 data-parallel ranks (Gloo all-reduce),
// on default-task-shaped trees and the built-in task's model shape. Each rank is its own
// process (this program re-executed with --rank), shards the step's trees by tokens as the
// scheduler does (ShardTreesByTokens), builds its batch (advantage whitening reduced over
// ranks) and takes the Trainer step (gradient all-reduced). Prints a table side by side and
// the ratio to one rank; --json FILE writes the rows.
//
// Usage: dp_learner_bench [--ranks 1,2,4] [--threads 1] [--steps 2] [--trees 16] [--json F]
//   --threads: BLAS threads per rank.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/collective/collective.h"
#include "common/cpu/ops.h"
#include "common/tree/tree_shards.h"
#include "learner/advantage/advantage.h"
#include "learner/service/train_batch.h"
#include "learner/service/trainer.h"
#include "tests/bench_learner/task_shapes.h"

namespace {

namespace fs = std::filesystem;
using namespace treepo;
using bench::TaskModel;
using bench::TaskTrees;

struct Args {
  std::vector<int> ranks = {1, 2, 4};
  int threads = 1, steps = 2, trees = 16;
  std::string json;
  // Child mode.
  int rank = -1, world = 1;
  std::string store, out;
};

int RunRank(const Args& a) {
  cpu::SetBlasThreads(a.threads);
  collective::CollectiveOptions co;
  co.rank = a.rank;
  co.world_size = a.world;
  co.store_dir = a.store;
  co.run_id = "bench";
  auto ranks = collective::CreateCollective(co);
  if (!ranks.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", a.rank, ranks.status().ToString().c_str());
    return 1;
  }
  learner::TrainerOptions to;
  to.adamw.lr = 1e-4f;
  auto trainer = learner::Trainer::Create(TaskModel(), to, WeightVersion(0));
  if (!trainer.ok() || !(*trainer)->set_collective(ranks->get()).ok()) return 1;
  auto est = learner::MakeAdvantageEstimator("treepo");
  learner::SumReducer reduce;
  if (a.world > 1) reduce = [&](std::span<double> v) { return (*ranks)->AllReduceSum(v); };
  nlohmann::json out;
  out["step_s"] = nlohmann::json::array();
  int64_t tokens = 0;
  for (int s = 0; s <= a.steps; ++s) {  // step 0 warms up
    const std::vector<TreeRecord> all = TaskTrees(a.trees, (*trainer)->version().value());
    const std::vector<std::vector<size_t>> shards = ShardTreesByTokens(all, a.world);
    std::vector<TreeRecord> mine;
    for (size_t i : shards[static_cast<size_t>(a.rank)]) mine.push_back(all[i]);
    if (!(*ranks)->Barrier().ok()) return 1;
    const auto t0 = std::chrono::steady_clock::now();
    auto batch = learner::BuildLearnerBatch(mine, **est, 128, reduce);
    if (!batch.ok()) return 1;
    auto m = (*trainer)->Step(*batch);
    if (!m.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", a.rank, m.status().ToString().c_str());
      return 1;
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) out["step_s"].push_back(secs);
    tokens = 0;
    for (const TreeRecord& t : all) tokens += TreeTrainTokens(t);
  }
  out["tokens_per_step"] = tokens;
  // One gradient-sized all-reduce alone (best of 5): the communication part of a step.
  std::vector<float> grad((*trainer)->weights().data.size(), 1.0f);
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    if (!(*ranks)->Barrier().ok()) return 1;
    const auto t0 = std::chrono::steady_clock::now();
    if (!(*ranks)->AllReduceSum(grad).ok()) return 1;
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  out["allreduce_s"] = best;
  out["params"] = grad.size();
  std::ofstream(a.out) << out.dump();
  return 0;
}

struct Row {
  int ranks = 0;
  int64_t tokens = 0;
  double step_s = 0.0;
  double allreduce_s = 0.0;  // one gradient-sized all-reduce
  int64_t params = 0;
};

// Runs `world` rank processes; the step time of a step is the slowest rank's.
Row RunWorld(const Args& a, int world, const std::string& self) {
  const fs::path dir =
      fs::temp_directory_path() /
      ("dp_learner_bench_" + std::to_string(::getpid()) + "_" + std::to_string(world));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<std::string> args = {self,
                                       "--rank",
                                       std::to_string(r),
                                       "--world",
                                       std::to_string(world),
                                       "--store",
                                       (dir / "store").string(),
                                       "--out",
                                       (dir / ("rank" + std::to_string(r))).string(),
                                       "--threads",
                                       std::to_string(a.threads),
                                       "--steps",
                                       std::to_string(a.steps),
                                       "--trees",
                                       std::to_string(a.trees)};
      std::vector<char*> argv;
      for (std::string& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(self.c_str(), argv.data());
      std::_Exit(127);
    }
    pids.push_back(pid);
  }
  bool ok = true;
  for (pid_t p : pids) {
    int st = 0;
    ::waitpid(p, &st, 0);
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  Row row;
  row.ranks = world;
  if (!ok) {
    std::fprintf(stderr, "world %d: a rank failed\n", world);
    return row;
  }
  std::vector<double> slowest;
  for (int r = 0; r < world; ++r) {
    std::ifstream in(dir / ("rank" + std::to_string(r)));
    const nlohmann::json j = nlohmann::json::parse(in);
    row.tokens = j["tokens_per_step"].get<int64_t>();
    row.allreduce_s = std::max(row.allreduce_s, j["allreduce_s"].get<double>());
    row.params = j["params"].get<int64_t>();
    const auto& steps = j["step_s"];
    slowest.resize(steps.size(), 0.0);
    for (size_t i = 0; i < steps.size(); ++i)
      slowest[i] = std::max(slowest[i], steps[i].get<double>());
  }
  // The best step: the machine is shared, the fastest step is the least disturbed.
  row.step_s = *std::min_element(slowest.begin(), slowest.end());
  fs::remove_all(dir);
  return row;
}

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::atoi(item.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--ranks")
      a.ranks = ParseList(v);
    else if (k == "--threads")
      a.threads = std::atoi(v.c_str());
    else if (k == "--steps")
      a.steps = std::atoi(v.c_str());
    else if (k == "--trees")
      a.trees = std::atoi(v.c_str());
    else if (k == "--json")
      a.json = v;
    else if (k == "--rank")
      a.rank = std::atoi(v.c_str());
    else if (k == "--world")
      a.world = std::atoi(v.c_str());
    else if (k == "--store")
      a.store = v;
    else if (k == "--out")
      a.out = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (a.rank >= 0) return RunRank(a);
  if (a.steps < 1 || a.trees < 1 || a.threads < 1 || a.ranks.empty()) {
    std::fprintf(stderr, "--steps, --trees, --threads must be >= 1 and --ranks non-empty\n");
    return 2;
  }
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<Row> rows;
  for (int w : a.ranks) rows.push_back(RunWorld(a, w, self));
  const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  double load[1] = {0.0};
  ::getloadavg(load, 1);
  std::printf(
      "data-parallel learner: %d trees/step (w 8, L 16, d 4), model dim 128 x 4 layers, "
      "%d BLAS thread(s) per rank, %ld cores, load %.1f\n",
      a.trees, a.threads, cores, load[0]);
  std::printf("%6s %12s %10s %12s %10s %14s\n", "ranks", "tokens/step", "s/step", "tokens/s",
              "vs 1 rank", "all-reduce ms");
  nlohmann::json j = nlohmann::json::array();
  const double base = rows.front().step_s > 0 ? rows.front().tokens / rows.front().step_s : 0.0;
  for (const Row& r : rows) {
    const double tps = r.step_s > 0 ? r.tokens / r.step_s : 0.0;
    std::printf("%6d %12lld %10.3f %12.0f %9.2fx %14.2f\n", r.ranks,
                static_cast<long long>(r.tokens), r.step_s, tps, base > 0 ? tps / base : 0.0,
                r.allreduce_s * 1e3);
    j.push_back({{"ranks", r.ranks},
                 {"tokens_per_step", r.tokens},
                 {"step_s", r.step_s},
                 {"tokens_per_s", tps},
                 {"allreduce_ms", r.allreduce_s * 1e3},
                 {"gradient_floats", r.params},
                 {"threads_per_rank", a.threads},
                 {"cores", cores}});
  }
  if (!a.json.empty()) std::ofstream(a.json) << j.dump(2) << "\n";
  return 0;
}

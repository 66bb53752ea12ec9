// learner_algorithm_bench: learner time per RL step of the built-in learner algorithm
// (ppo_clip: clipped policy loss, AdamW) against a plug-in learner through the C ABI
// (reinforce_sgd from tests/plugins/example_learner.c: REINFORCE with SGD, one forward for its
// loss and one backward, which runs its own forward). Both train the built-in task's model
// shape on default-task-shaped trees, tree-packed, one rank. Prints a table side by side with
// the ratio to ppo_clip; --json FILE writes the rows.
//
// Usage: learner_algorithm_bench --plugin PATH/libtreepo_example_learner.so [--steps 5]
//          [--trees 16] [--threads 1] [--json F]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/cpu/ops.h"
#include "common/plugin/plugin_loader.h"
#include "learner/advantage/advantage.h"
#include "learner/service/learner_algorithm.h"
#include "learner/service/train_batch.h"
#include "learner/service/trainer.h"
#include "tests/bench_learner/task_shapes.h"

namespace {

using namespace treepo;

struct Args {
  std::string plugin, json;
  int steps = 5, trees = 16, threads = 1;
};

struct Row {
  std::string algorithm;
  double step_s = 0.0;  // mean over the timed steps
  int64_t tokens = 0;   // response tokens per step
};

// Mean seconds per step of `name` over a.steps steps after one warm-up step.
Result<Row> Measure(const std::string& name, const std::string& settings, const Args& a) {
  learner::TrainerOptions to;
  to.adamw.lr = 1e-4f;
  learner::LearnerAlgorithmOptions o;
  o.trainer = &to;
  o.settings = settings;
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<learner::LearnerAlgorithm> algo,
                          learner::MakeLearnerAlgorithm(name, bench::TaskModel(), o));
  TREEPO_ASSIGN_OR_RETURN(auto est, learner::MakeAdvantageEstimator("treepo"));
  Row row{name};
  double total = 0.0;
  for (int s = 0; s <= a.steps; ++s) {  // step 0 warms up
    const std::vector<TreeRecord> trees = bench::TaskTrees(a.trees, algo->version().value());
    TREEPO_ASSIGN_OR_RETURN(learner::LearnerBatch batch,
                            learner::BuildLearnerBatch(trees, *est, 128));
    const auto t0 = std::chrono::steady_clock::now();
    TREEPO_ASSIGN_OR_RETURN(learner::TrainStepMetrics m, algo->Step(batch));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) total += secs;
    row.tokens = m.tokens;
  }
  row.step_s = total / a.steps;
  return row;
}

int Usage() {
  std::fprintf(stderr,
               "usage: learner_algorithm_bench --plugin libtreepo_example_learner.so [--steps N] "
               "[--trees N] [--threads N] [--json FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) return Usage();
    const char* v = argv[++i];
    if (k == "--plugin") {
      a.plugin = v;
    } else if (k == "--json") {
      a.json = v;
    } else if (k == "--steps") {
      a.steps = std::atoi(v);
    } else if (k == "--trees") {
      a.trees = std::atoi(v);
    } else if (k == "--threads") {
      a.threads = std::atoi(v);
    } else {
      return Usage();
    }
  }
  if (a.plugin.empty() || a.steps < 1 || a.trees < 1 || a.threads < 1) return Usage();
  cpu::SetBlasThreads(a.threads);
  PluginHost host;
  host.learner = learner::RegisterLearnerPlugin;
  if (Status st = LoadPlugins({a.plugin}, host); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  std::vector<Row> rows;
  for (const auto& [name, settings] : std::vector<std::pair<std::string, std::string>>{
           {"ppo_clip", ""}, {"reinforce_sgd", "lr=0.0001"}}) {
    Result<Row> r = Measure(name, settings, a);
    if (!r.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), r.status().ToString().c_str());
      return 1;
    }
    rows.push_back(*r);
  }
  std::printf(
      "learner step, %d default-task trees (%lld response tokens), %d BLAS thread(s), "
      "mean of %d steps\n",
      a.trees, static_cast<long long>(rows[0].tokens), a.threads, a.steps);
  std::printf("%-16s %10s %12s %10s\n", "algorithm", "step ms", "tokens/s", "vs ppo_clip");
  nlohmann::json out = nlohmann::json::array();
  for (const Row& r : rows) {
    std::printf("%-16s %10.1f %12.0f %10.2f\n", r.algorithm.c_str(), 1e3 * r.step_s,
                static_cast<double>(r.tokens) / r.step_s, r.step_s / rows[0].step_s);
    out.push_back({{"algorithm", r.algorithm},
                   {"step_s", r.step_s},
                   {"tokens", r.tokens},
                   {"threads", a.threads},
                   {"trees", a.trees}});
  }
  if (!a.json.empty()) std::ofstream(a.json) << out.dump(2) << "\n";
  return 0;
}

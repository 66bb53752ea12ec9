// rl_compare_bench: TreePO (tree sampling + the treepo advantage) against GRPO (sequential
// sampling + the grpo advantage) with the same budget, side by side, through the real
// `treepo train` command (scheduler, workers and learner as processes on loopback).
//
// Both arms start from the same base model (made once with `treepo pretrain`'s defaults unless
// --base is given), take the same number of RL steps with the same queries per step, width,
// learning rate and seeds; only rollout.mode and learner.estimator differ. Each arm runs once
// per seed (--seeds, default 2) and the figures are means over seeds. It prints:
//   1. held-out evaluation before and after (greedy accuracy, pass@1 / Maj@k / pass@k at T=1),
//      wall time, RL tokens computed by the workers (prefill + decode) and training tokens;
//   2. the curve: at every checkpoint (each --block steps) the held-out greedy accuracy and
//      pass@1, with cumulative RL wall time and tokens computed, and the block's rollout
//      accuracy (fresh train prompts at T=1; tree leaves over-represent paths that go on, so
//      this column reads high for tree sampling and only the held-out columns compare);
//   3. the wall time and tokens computed each arm needed to first reach given held-out
//      pass@1 values (at a checkpoint).
// Nothing asserts on the figures: it is a benchmark program (docs/builtin-task.md).
//
// Usage: rl_compare_bench [--treepo PATH] [--base DIR] [--steps N] [--seeds N]
//          [--queries Q] [--width W] [--lr LR] [--block N] [--keep DIR] [--json FILE]
//          [--set key=value ...]   (passed to both arms)
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/testing/paths.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Options {
  std::string treepo, base, keep_dir, json_path;
  int steps = 60, seeds = 2, queries = 16, width = 8, block = 10;
  std::string lr = "2e-5";
  std::vector<std::string> sets;
};

struct Arm {
  std::string name, mode, estimator;
};

struct StepPoint {
  double wall_s = 0, accuracy = 0;
  int64_t tokens_computed = 0;
};

struct RunResult {
  json eval_base, eval_final;
  std::map<int, json> evals;     // step -> eval (0: base, steps: final, and each checkpoint)
  std::vector<StepPoint> steps;  // cumulative wall and tokens at the end of each step
  int64_t train_tokens = 0;
};

int Run(const std::vector<std::string>& argv, const fs::path& log) {
  std::string cmd;
  for (const std::string& a : argv) cmd += "'" + a + "' ";
  cmd += "> '" + log.string() + "' 2>&1";
  return std::system(cmd.c_str());
}

bool ReadJson(const fs::path& p, json* out) {
  std::ifstream f(p);
  if (!f) return false;
  *out = json::parse(f, nullptr, /*allow_exceptions=*/false);
  return !out->is_discarded();
}

bool RunArm(const Options& o, const Arm& arm, int seed, const fs::path& base, const fs::path& dir,
            RunResult* r) {
  const fs::path out = dir / (arm.name + "-seed" + std::to_string(seed));
  fs::remove_all(out);
  std::vector<std::string> argv = {
      o.treepo, "train",
      "--set",  "out_dir=" + out.string(),
      "--set",  "model.base=" + base.string(),
      "--set",  "model.make_if_missing=false",
      "--set",  "output.progress=false",
      "--set",  "output.trees=false",
      "--set",  "steps=" + std::to_string(o.steps),
      "--set",  "seed=" + std::to_string(seed),
      "--set",  "rollout.queries_per_step=" + std::to_string(o.queries),
      "--set",  "rollout.width=" + std::to_string(o.width),
      "--set",  "learner.lr=" + o.lr,
      "--set",  "rollout.mode=" + arm.mode,
      "--set",  "learner.estimator=" + arm.estimator,
      "--set",  "output.checkpoint_every=" + std::to_string(o.block)};
  for (const std::string& s : o.sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  const fs::path log = dir / (arm.name + "-seed" + std::to_string(seed) + ".log");
  std::fprintf(stderr, "%s seed %d ...\n", arm.name.c_str(), seed);
  if (Run(argv, log) != 0) {
    std::fprintf(stderr, "rl_compare_bench: treepo train failed; see %s\n", log.c_str());
    return false;
  }
  if (!ReadJson(out / "eval_base.json", &r->eval_base) ||
      !ReadJson(out / "eval_final.json", &r->eval_final)) {
    std::fprintf(stderr, "rl_compare_bench: no eval files in %s\n", out.c_str());
    return false;
  }
  r->evals[0] = r->eval_base;
  r->evals[o.steps] = r->eval_final;
  for (int s = o.block; s < o.steps; s += o.block) {
    json e;
    if (!ReadJson(out / ("eval_step_" + std::to_string(s) + ".json"), &e)) {
      std::fprintf(stderr, "rl_compare_bench: no checkpoint eval for step %d in %s\n", s,
                   out.c_str());
      return false;
    }
    r->evals[s] = e;
  }
  std::ifstream m(out / "metrics.jsonl");
  std::string line;
  int64_t tokens = 0;
  while (std::getline(m, line)) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("accuracy") || !j.contains("wall_s")) continue;
    tokens += j.value("tokens_computed", int64_t{0});
    r->train_tokens += static_cast<int64_t>(j.value("train_tokens", 0.0));
    r->steps.push_back({j.value("wall_s", 0.0), j.value("accuracy", 0.0), tokens});
  }
  if (static_cast<int>(r->steps.size()) != o.steps) {
    std::fprintf(stderr, "rl_compare_bench: %s has %zu step lines, expected %d\n",
                 (out / "metrics.jsonl").c_str(), r->steps.size(), o.steps);
    return false;
  }
  return true;
}

double Mean(const std::vector<RunResult>& runs, const char* which, const char* key) {
  double s = 0;
  for (const RunResult& r : runs) {
    s += (std::string(which) == "base" ? r.eval_base : r.eval_final).value(key, 0.0);
  }
  return s / static_cast<double>(runs.size());
}

// Mean over seeds of the per-step points.
std::vector<StepPoint> MeanCurve(const std::vector<RunResult>& runs) {
  std::vector<StepPoint> c(runs[0].steps.size());
  for (const RunResult& r : runs) {
    for (size_t i = 0; i < c.size(); ++i) {
      c[i].wall_s += r.steps[i].wall_s / runs.size();
      c[i].accuracy += r.steps[i].accuracy / runs.size();
      c[i].tokens_computed += r.steps[i].tokens_computed / static_cast<int64_t>(runs.size());
    }
  }
  return c;
}

void Usage() {
  std::fprintf(stderr,
               "usage: rl_compare_bench [--treepo PATH] [--base DIR] [--steps N] [--seeds N] "
               "[--queries Q] [--width W] [--lr LR] [--block N] [--keep DIR] [--json FILE] "
               "[--set key=value ...]\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.treepo = treepo::testing::TreepoBinary();
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) {
      Usage();
      return 2;
    }
    const std::string v = argv[++i];
    if (k == "--treepo") {
      o.treepo = v;
    } else if (k == "--base") {
      o.base = v;
    } else if (k == "--keep") {
      o.keep_dir = v;
    } else if (k == "--json") {
      o.json_path = v;
    } else if (k == "--lr") {
      o.lr = v;
    } else if (k == "--set") {
      o.sets.push_back(v);
    } else if (k == "--steps") {
      o.steps = std::atoi(v.c_str());
    } else if (k == "--seeds") {
      o.seeds = std::atoi(v.c_str());
    } else if (k == "--queries") {
      o.queries = std::atoi(v.c_str());
    } else if (k == "--width") {
      o.width = std::atoi(v.c_str());
    } else if (k == "--block") {
      o.block = std::atoi(v.c_str());
    } else {
      Usage();
      return 2;
    }
  }
  if (o.steps < 3 || o.seeds < 1 || o.queries < 1 || o.width < 1 || o.block < 1) {
    std::fprintf(stderr, "--steps must be >= 3; --seeds, --queries, --width, --block >= 1\n");
    return 2;
  }
  if (!fs::exists(o.treepo)) {
    std::fprintf(stderr, "rl_compare_bench: no treepo binary at %s (--treepo)\n", o.treepo.c_str());
    return 1;
  }
  const fs::path dir = o.keep_dir.empty() ? fs::path(treepo::testing::FreshTempDir("rl_compare"))
                                          : fs::path(o.keep_dir);
  fs::create_directories(dir);
  fs::path base = o.base;
  if (base.empty()) {
    base = dir / "base";
    if (!fs::exists(base / "config.json")) {
      std::fprintf(stderr, "pretraining the base model into %s ...\n", base.c_str());
      if (Run({o.treepo, "pretrain", "--out", base.string()}, dir / "pretrain.log") != 0) {
        std::fprintf(stderr, "rl_compare_bench: treepo pretrain failed; see %s\n",
                     (dir / "pretrain.log").c_str());
        return 1;
      }
    }
  }

  const std::vector<Arm> arms = {{"TreePO", "tree", "treepo"}, {"GRPO", "sequential", "grpo"}};
  std::map<std::string, std::vector<RunResult>> results;
  for (int seed = 1; seed <= o.seeds; ++seed) {
    for (const Arm& arm : arms) {  // interleaved, so machine drift hits both arms alike
      RunResult r;
      if (!RunArm(o, arm, seed, base, dir, &r)) return 1;
      results[arm.name].push_back(std::move(r));
    }
  }

  std::printf(
      "RL: built-in task, base %s, %d steps x %d queries x w=%d, lr %s, mean of %d seed(s)\n\n",
      base.c_str(), o.steps, o.queries, o.width, o.lr.c_str(), o.seeds);
  std::printf(
      "| arm | greedy acc base -> final | pass@1 base -> final | Maj@k base -> final | "
      "pass@k base -> final | RL wall s | tokens computed | training tokens |\n"
      "|---|---|---|---|---|---|---|---|\n");
  json out = json::object();
  for (const Arm& arm : arms) {
    const std::vector<RunResult>& runs = results[arm.name];
    const std::vector<StepPoint> c = MeanCurve(runs);
    int64_t train_tokens = 0;
    for (const RunResult& r : runs) train_tokens += r.train_tokens / o.seeds;
    auto pct = [&](const char* key) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f%% -> %.1f%%", 100 * Mean(runs, "base", key),
                    100 * Mean(runs, "final", key));
      return std::string(buf);
    };
    std::printf("| %s | %s | %s | %s | %s | %.1f | %lld | %lld |\n", arm.name.c_str(),
                pct("accuracy").c_str(), pct("pass_at_1").c_str(), pct("maj_at_k").c_str(),
                pct("pass_at_k").c_str(), c.back().wall_s,
                static_cast<long long>(c.back().tokens_computed),
                static_cast<long long>(train_tokens));
    json a;
    for (const char* key : {"accuracy", "pass_at_1", "maj_at_k", "pass_at_k"}) {
      a["base"][key] = Mean(runs, "base", key);
      a["final"][key] = Mean(runs, "final", key);
    }
    a["wall_s"] = c.back().wall_s;
    a["tokens_computed"] = c.back().tokens_computed;
    a["train_tokens"] = train_tokens;
    for (const StepPoint& p : c) {
      a["curve"].push_back(
          {{"wall_s", p.wall_s}, {"tokens_computed", p.tokens_computed}, {"accuracy", p.accuracy}});
    }
    out[arm.name] = a;
  }

  const std::vector<StepPoint> t = MeanCurve(results["TreePO"]);
  const std::vector<StepPoint> g = MeanCurve(results["GRPO"]);
  // Held-out figure `key` at checkpoint `step`, mean over seeds.
  auto held = [&](const std::string& arm, int step, const char* key) {
    double v = 0;
    for (const RunResult& r : results[arm]) v += r.evals.at(step).value(key, 0.0);
    return v / static_cast<double>(results[arm].size());
  };
  std::vector<int> marks;
  for (int s = 0; s < o.steps; s += o.block) marks.push_back(s);
  marks.push_back(o.steps);
  // Cumulative wall / tokens after `step` steps (0 before the first).
  auto wall = [](const std::vector<StepPoint>& c, int step) {
    return step == 0 ? 0.0 : c[step - 1].wall_s;
  };
  auto tokens = [](const std::vector<StepPoint>& c, int step) {
    return step == 0 ? int64_t{0} : c[step - 1].tokens_computed;
  };
  auto rollout_acc = [&](const std::vector<StepPoint>& c, int step) {
    if (step == 0) return std::string("-");
    const int from = std::max(0, step - o.block);
    double a = 0;
    for (int i = from; i < step; ++i) a += c[i].accuracy;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f%%", 100 * a / (step - from));
    return std::string(buf);
  };
  std::printf(
      "\nHeld-out curve (greedy, and pass@1 over the eval's samples at T=1) at each "
      "checkpoint, with cumulative RL wall time, tokens computed, and the last block's rollout "
      "accuracy:\n\n"
      "| step | TreePO greedy | TreePO pass@1 | TreePO wall s | TreePO tokens | TreePO rollout "
      "acc | GRPO greedy | GRPO pass@1 | GRPO wall s | GRPO tokens | GRPO rollout acc |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int s : marks) {
    std::printf(
        "| %d | %.1f%% | %.1f%% | %.1f | %lld | %s | %.1f%% | %.1f%% | %.1f | %lld | %s |\n", s,
        100 * held("TreePO", s, "accuracy"), 100 * held("TreePO", s, "pass_at_1"), wall(t, s),
        static_cast<long long>(tokens(t, s)), rollout_acc(t, s).c_str(),
        100 * held("GRPO", s, "accuracy"), 100 * held("GRPO", s, "pass_at_1"), wall(g, s),
        static_cast<long long>(tokens(g, s)), rollout_acc(g, s).c_str());
  }
  std::printf(
      "\nFirst checkpoint reaching a held-out pass@1: RL wall time and tokens computed\n\n"
      "| pass@1 target | TreePO step | TreePO wall s | TreePO tokens | GRPO step | GRPO wall s | "
      "GRPO tokens | GRPO / TreePO tokens |\n|---|---|---|---|---|---|---|---|\n");
  const double base_p1 = held("TreePO", 0, "pass_at_1");
  for (double gain : {0.10, 0.20, 0.30}) {
    const double target = base_p1 + gain;
    auto first = [&](const std::string& arm) {
      for (int s : marks) {
        if (held(arm, s, "pass_at_1") >= target) return s;
      }
      return -1;
    };
    const int ts = first("TreePO"), gs = first("GRPO");
    auto cell = [&](const std::vector<StepPoint>& c, int s) {
      char buf[96];
      if (s < 0) return std::string("not reached | - | -");
      std::snprintf(buf, sizeof buf, "%d | %.1f | %lld", s, wall(c, s),
                    static_cast<long long>(tokens(c, s)));
      return std::string(buf);
    };
    char ratio[32] = "-";
    if (ts > 0 && gs > 0) {
      std::snprintf(ratio, sizeof ratio, "%.2f",
                    static_cast<double>(tokens(g, gs)) / static_cast<double>(tokens(t, ts)));
    }
    std::printf("| %.1f%% (+%.0f pts) | %s | %s | %s |\n", 100 * target, 100 * gain,
                cell(t, ts).c_str(), cell(g, gs).c_str(), ratio);
  }
  for (const Arm& arm : arms) {
    for (int s : marks) {
      out[arm.name]["held_out"][std::to_string(s)] = {
          {"accuracy", held(arm.name, s, "accuracy")},
          {"pass_at_1", held(arm.name, s, "pass_at_1")}};
    }
  }
  if (!o.json_path.empty()) std::ofstream(o.json_path) << out.dump(2) << "\n";
  if (o.keep_dir.empty()) fs::remove_all(dir);
  return 0;
}

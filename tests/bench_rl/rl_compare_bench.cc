// rl_compare_bench: TreePO against GRPO (and variants) with the same budget, side by side,
// through the real `treepo train` command (scheduler, workers and learner as processes on
// loopback), on either built-in task (docs/efficacy.md).
//
// Every arm starts from the same base model (made once with `treepo pretrain --task T` unless
// --base is given), takes the same number of RL steps with the same prompts per step (the
// prompt order is a function of the seed), width and learning rate; the arms differ only in
// rollout.mode, learner.estimator and their own keys:
//   TreePO       tree sampling, treepo advantages, fixed_avg branching, fixed initial divergence
//   TreePO-lpw   ... with rollout.branching = logprob_weighted
//   TreePO-more  ... with rollout.init_divergence = more
//   TreePO-L32   ... with segments of 32 tokens and at most 4 of them (the reasoning preset's:
//                a 128-token budget in 4 segments, the 8 leaves sharing their first 32-64 tokens)
//   TreePO-L16   ... with segments of 16 tokens and at most 8 of them (the same budget, branch
//                points at tokens 16, 32 and 48)
//   GRPO         sequential sampling (w independent samples), grpo advantages
//   RLOO, Dr.GRPO   sequential sampling with the rloo / dr_grpo estimators
// and `--arm NAME:MODE:ESTIMATOR[:key=value,key=value]` defines another (an ablation). Each arm
// runs once per seed (--seeds, default 3), interleaved. For every arm it prints, as mean and
// [min-max] over seeds:
//   1. base -> final held-out greedy accuracy, pass@1 and Maj@k at T=1, RL wall seconds, rollout
//      tokens computed by the workers (prefill + decode) and training tokens;
//   2. the curve: at every checkpoint (each --block steps) the held-out greedy, pass@1 and
//      Maj@k with cumulative RL wall seconds, rollout tokens and training tokens;
//   3. the wall seconds and rollout tokens each arm needed to first reach given held-out pass@1
//      values (on the seed-mean curve, at a checkpoint), and against GRPO's final pass@1 the
//      issue's target: at most 0.7x GRPO's wall seconds and rollout tokens.
// --md and --json write the same as markdown and JSON (scripts/plot_efficacy.py draws the JSON).
// Nothing asserts on the figures: it is a benchmark program.
//
// Usage: rl_compare_bench [--task arithmetic|reasoning] [--treepo PATH] [--base DIR]
//          [--config TOML] [--arms A,B,...] [--arm NAME:MODE:EST[:k=v,...]] [--steps N]
//          [--seeds N] [--queries Q] [--width W] [--lr LR] [--block N] [--eval-problems N]
//          [--eval-samples K] [--eval-max-new-tokens N] [--keep DIR] [--reuse 0|1] [--json FILE]
//          [--md FILE]
//          [--set key=value ...]   (passed to every arm)
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

struct Arm {
  std::string name, mode, estimator;
  std::vector<std::string> sets;  // key=value, this arm only
};

struct Options {
  std::string task = "arithmetic";
  std::string treepo, base, config, keep_dir, json_path, md_path;
  int steps = 60, seeds = 3, queries = 16, width = 8, block = 10;
  int eval_problems = 200, eval_samples = 8;
  int eval_max_new_tokens = 0;  // 0: 96 for arithmetic, 128 for reasoning
  bool reuse = false;
  std::string lr;  // "": the config's (default.toml: 2e-5; reasoning.toml: 5e-5)
  std::vector<std::string> sets;
  std::vector<std::string> arm_names = {"TreePO", "TreePO-lpw", "TreePO-more", "GRPO"};
  std::vector<Arm> custom_arms;
};

const std::vector<Arm>& KnownArms() {
  static const std::vector<Arm> arms = {
      {"TreePO", "tree", "treepo", {}},
      {"TreePO-lpw", "tree", "treepo", {"rollout.branching=logprob_weighted"}},
      {"TreePO-more", "tree", "treepo", {"rollout.init_divergence=more"}},
      {"TreePO-L32", "tree", "treepo", {"rollout.segment_tokens=32", "rollout.max_depth=4"}},
      {"TreePO-L16", "tree", "treepo", {"rollout.segment_tokens=16", "rollout.max_depth=8"}},
      {"GRPO", "sequential", "grpo", {}},
      {"RLOO", "sequential", "rloo", {}},
      {"Dr.GRPO", "sequential", "dr_grpo", {}},
  };
  return arms;
}

// The figures of one checkpoint evaluation and the cumulative cost up to it.
struct Point {
  int step = 0;
  double greedy = 0, pass1 = 0, majk = 0, passk = 0;
  double wall_s = 0;
  double rollout_tokens = 0, train_tokens = 0;
};

struct RunResult {
  std::vector<Point> points;  // step 0 (base), each checkpoint, the final step
};

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int Run(const std::vector<std::string>& argv, const fs::path& log) {
  std::string cmd = "nice ";
  for (const std::string& a : argv) cmd += "'" + a + "' ";
  cmd += "> '" + log.string() + "' 2>&1";
  return std::system(cmd.c_str());
}

bool ReadJson(const fs::path& p, json* out) {
  std::ifstream f(p);
  if (!f) return false;
  *out = json::parse(f, nullptr, /*allow_exceptions=*/false);
  return !out->is_discarded() && out->is_object();
}

Point FromEval(int step, const json& e) {
  Point p;
  p.step = step;
  p.greedy = e.value("accuracy", 0.0);
  p.pass1 = e.value("pass_at_1", 0.0);
  p.majk = e.value("maj_at_k", 0.0);
  p.passk = e.value("pass_at_k", 0.0);
  return p;
}

std::vector<int> Marks(const Options& o) {
  std::vector<int> marks;
  for (int s = 0; s < o.steps; s += o.block) marks.push_back(s);
  marks.push_back(o.steps);
  return marks;
}

// Reads a finished run's files; false (with a message) when any is missing or short.
bool ReadRun(const Options& o, const fs::path& out, const json& base_eval, RunResult* r,
             bool quiet) {
  std::map<int, json> evals;
  evals[0] = base_eval;
  for (int s : Marks(o)) {
    if (s == 0) continue;
    const fs::path f = out / (s == o.steps ? std::string("eval_final.json")
                                           : "eval_step_" + std::to_string(s) + ".json");
    json e;
    if (!ReadJson(f, &e)) {
      if (!quiet) std::fprintf(stderr, "rl_compare_bench: no evaluation %s\n", f.c_str());
      return false;
    }
    evals[s] = e;
  }
  std::ifstream m(out / "metrics.jsonl");
  std::string line;
  std::vector<Point> cum;  // per step
  double rollout = 0, train = 0;
  while (std::getline(m, line)) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("accuracy") || !j.contains("wall_s")) continue;
    rollout += j.value("tokens_computed", 0.0);
    train += j.value("train_tokens", 0.0);
    Point p;
    p.step = j.value("step", 0);
    p.wall_s = j.value("wall_s", 0.0);
    p.rollout_tokens = rollout;
    p.train_tokens = train;
    cum.push_back(p);
  }
  if (static_cast<int>(cum.size()) != o.steps) {
    if (!quiet) {
      std::fprintf(stderr, "rl_compare_bench: %s has %zu step lines, expected %d\n",
                   (out / "metrics.jsonl").c_str(), cum.size(), o.steps);
    }
    return false;
  }
  r->points.clear();
  for (const auto& [s, e] : evals) {
    Point p = FromEval(s, e);
    if (s > 0) {
      p.wall_s = cum[s - 1].wall_s;
      p.rollout_tokens = cum[s - 1].rollout_tokens;
      p.train_tokens = cum[s - 1].train_tokens;
    }
    r->points.push_back(p);
  }
  return true;
}

bool RunArm(const Options& o, const Arm& arm, int seed, const fs::path& base, const json& base_eval,
            const fs::path& dir, RunResult* r) {
  const fs::path out = dir / (arm.name + "-seed" + std::to_string(seed));
  if (o.reuse && ReadRun(o, out, base_eval, r, /*quiet=*/true)) {
    std::fprintf(stderr, "%s seed %d: reusing %s\n", arm.name.c_str(), seed, out.c_str());
    return true;
  }
  fs::remove_all(out);
  std::vector<std::string> argv = {o.treepo, "train"};
  if (!o.config.empty()) {
    argv.push_back("--config");
    argv.push_back(o.config);
  }
  for (const std::string& s : std::vector<std::string>{
           "out_dir=" + out.string(), "model.base=" + base.string(), "model.make_if_missing=false",
           std::string("output.progress=false"), std::string("output.trees=false"),
           std::string("output.report=false"), "steps=" + std::to_string(o.steps),
           "seed=" + std::to_string(seed), "rollout.queries_per_step=" + std::to_string(o.queries),
           "rollout.width=" + std::to_string(o.width), "rollout.mode=" + arm.mode,
           "learner.estimator=" + arm.estimator,
           "output.checkpoint_every=" + std::to_string(o.block), std::string("eval.before=false"),
           "eval.problems=" + std::to_string(o.eval_problems),
           "eval.samples=" + std::to_string(o.eval_samples),
           "eval.max_new_tokens=" + std::to_string(o.eval_max_new_tokens),
           std::string("dashboard.enabled=false")}) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  if (!o.lr.empty()) {
    argv.push_back("--set");
    argv.push_back("learner.lr=" + o.lr);
  }
  for (const std::vector<std::string>* sets : {&o.sets, &arm.sets}) {
    for (const std::string& s : *sets) {
      argv.push_back("--set");
      argv.push_back(s);
    }
  }
  const fs::path log = dir / (arm.name + "-seed" + std::to_string(seed) + ".log");
  std::fprintf(stderr, "%s seed %d ...\n", arm.name.c_str(), seed);
  if (Run(argv, log) != 0) {
    std::fprintf(stderr, "rl_compare_bench: treepo train failed; see %s\n", log.c_str());
    return false;
  }
  return ReadRun(o, out, base_eval, r, /*quiet=*/false);
}

struct Stat {
  double mean = 0, lo = 0, hi = 0;
};

Stat Over(const std::vector<RunResult>& runs, size_t i, double Point::*field) {
  Stat s;
  s.lo = 1e300;
  s.hi = -1e300;
  for (const RunResult& r : runs) {
    const double v = r.points[i].*field;
    s.mean += v / static_cast<double>(runs.size());
    s.lo = std::min(s.lo, v);
    s.hi = std::max(s.hi, v);
  }
  return s;
}

std::string Pct(const Stat& s) {
  char buf[96];
  if (s.hi - s.lo < 1e-9) {
    std::snprintf(buf, sizeof buf, "%.1f%%", 100 * s.mean);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f%% [%.1f-%.1f]", 100 * s.mean, 100 * s.lo, 100 * s.hi);
  }
  return buf;
}

std::string Num(const Stat& s, const char* fmt_one, const char* fmt_range) {
  char buf[128];
  if (s.hi - s.lo < 1e-9) {
    std::snprintf(buf, sizeof buf, fmt_one, s.mean);
  } else {
    std::snprintf(buf, sizeof buf, fmt_range, s.mean, s.lo, s.hi);
  }
  return buf;
}

std::string Wall(const Stat& s) { return Num(s, "%.1f", "%.1f [%.1f-%.1f]"); }
std::string Tokens(const Stat& s) { return Num(s, "%.0f", "%.0f [%.0f-%.0f]"); }

json StatJson(const Stat& s) { return {{"mean", s.mean}, {"min", s.lo}, {"max", s.hi}}; }

void Usage() {
  std::fprintf(stderr,
               "usage: rl_compare_bench [--task arithmetic|reasoning] [--treepo PATH] [--base DIR] "
               "[--config TOML] [--arms A,B,...] [--arm NAME:MODE:EST[:k=v,...]] [--steps N] "
               "[--seeds N] [--queries Q] [--width W] [--lr LR] [--block N] [--eval-problems N] "
               "[--eval-samples K] [--eval-max-new-tokens N] [--keep DIR] [--reuse 0|1] [--json "
               "FILE] [--md FILE] "
               "[--set key=value ...]\n  known arms:");
  for (const Arm& a : KnownArms()) std::fprintf(stderr, " %s", a.name.c_str());
  std::fprintf(stderr, "\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.treepo = treepo::testing::TreepoBinary();
  bool config_given = false, arms_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) {
      Usage();
      return 2;
    }
    const std::string v = argv[++i];
    auto to_int = [&](int* out) {
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0') {
        std::fprintf(stderr, "rl_compare_bench: %s needs an integer, not \"%s\"\n", k.c_str(),
                     v.c_str());
        std::exit(2);
      }
      *out = static_cast<int>(n);
    };
    if (k == "--task") {
      o.task = v;
    } else if (k == "--treepo") {
      o.treepo = v;
    } else if (k == "--base") {
      o.base = v;
    } else if (k == "--config") {
      o.config = v;
      config_given = true;
    } else if (k == "--keep") {
      o.keep_dir = v;
    } else if (k == "--json") {
      o.json_path = v;
    } else if (k == "--md") {
      o.md_path = v;
    } else if (k == "--lr") {
      o.lr = v;
    } else if (k == "--set") {
      o.sets.push_back(v);
    } else if (k == "--arms") {
      o.arm_names = Split(v, ',');
      arms_given = true;
    } else if (k == "--arm") {
      const std::vector<std::string> parts = Split(v, ':');
      if (parts.size() < 3 || parts.size() > 4) {
        std::fprintf(stderr,
                     "rl_compare_bench: --arm wants NAME:MODE:ESTIMATOR[:k=v,...], not %s\n",
                     v.c_str());
        return 2;
      }
      Arm a{parts[0], parts[1], parts[2], {}};
      if (parts.size() == 4) a.sets = Split(parts[3], ',');
      o.custom_arms.push_back(a);
      if (std::find(o.arm_names.begin(), o.arm_names.end(), a.name) == o.arm_names.end()) {
        o.arm_names.push_back(a.name);
      }
    } else if (k == "--steps") {
      to_int(&o.steps);
    } else if (k == "--seeds") {
      to_int(&o.seeds);
    } else if (k == "--queries") {
      to_int(&o.queries);
    } else if (k == "--width") {
      to_int(&o.width);
    } else if (k == "--block") {
      to_int(&o.block);
    } else if (k == "--eval-problems") {
      to_int(&o.eval_problems);
    } else if (k == "--eval-samples") {
      to_int(&o.eval_samples);
    } else if (k == "--eval-max-new-tokens") {
      to_int(&o.eval_max_new_tokens);
    } else if (k == "--reuse") {
      o.reuse = v == "1" || v == "true";
    } else {
      Usage();
      return 2;
    }
  }
  if (o.steps < 3 || o.seeds < 1 || o.queries < 1 || o.width < 1 || o.block < 1 ||
      o.eval_problems < 1 || o.eval_samples < 1) {
    std::fprintf(stderr,
                 "--steps must be >= 3; --seeds, --queries, --width, --block, --eval-problems, "
                 "--eval-samples >= 1\n");
    return 2;
  }
  if (o.task != "arithmetic" && o.task != "reasoning") {
    std::fprintf(stderr, "rl_compare_bench: --task must be arithmetic or reasoning, not %s\n",
                 o.task.c_str());
    return 2;
  }
  if (o.eval_max_new_tokens == 0) o.eval_max_new_tokens = o.task == "reasoning" ? 128 : 96;
  if (!config_given && o.task == "reasoning") {
    o.config = treepo::testing::SourceDir() + "/configs/reasoning.toml";
  }
  if (!arms_given && o.task == "reasoning") {
    // The preset's TreePO (32-token segments), the same with 16-token ones, with log-prob
    // weighted branching and with more initial divergence, and GRPO (docs/efficacy.md).
    o.arm_names = {"TreePO", "TreePO-L16", "TreePO-lpw", "TreePO-more", "GRPO"};
  }
  std::vector<Arm> arms;
  for (const std::string& name : o.arm_names) {
    const Arm* found = nullptr;
    for (const Arm& a : o.custom_arms) {
      if (a.name == name) found = &a;
    }
    for (const Arm& a : KnownArms()) {
      if (!found && a.name == name) found = &a;
    }
    if (!found) {
      std::fprintf(stderr, "rl_compare_bench: unknown arm %s (--arm defines one)\n", name.c_str());
      Usage();
      return 2;
    }
    arms.push_back(*found);
  }
  if (!fs::exists(o.treepo)) {
    std::fprintf(stderr, "rl_compare_bench: no treepo binary at %s (--treepo)\n", o.treepo.c_str());
    return 1;
  }
  if (!o.config.empty() && !fs::exists(o.config)) {
    std::fprintf(stderr, "rl_compare_bench: no config file %s (--config)\n", o.config.c_str());
    return 1;
  }
  const fs::path dir = o.keep_dir.empty() ? fs::path(treepo::testing::FreshTempDir("rl_compare"))
                                          : fs::path(o.keep_dir);
  fs::create_directories(dir);
  fs::path base = o.base;
  if (base.empty()) {
    base = dir / "base";
    if (!fs::exists(base / "config.json")) {
      std::fprintf(stderr, "pretraining the %s base model into %s ...\n", o.task.c_str(),
                   base.c_str());
      if (Run({o.treepo, "pretrain", "--task", o.task, "--out", base.string()},
              dir / "pretrain.log") != 0) {
        std::fprintf(stderr, "rl_compare_bench: treepo pretrain failed; see %s\n",
                     (dir / "pretrain.log").c_str());
        return 1;
      }
    }
  }
  // The base is evaluated once (every arm starts from it), with the arms' eval settings.
  const fs::path base_eval_path = dir / "eval_base.json";
  json base_eval;
  if (!(o.reuse && ReadJson(base_eval_path, &base_eval))) {
    std::fprintf(stderr, "evaluating the base model ...\n");
    if (Run({o.treepo, "eval", "--model", base.string(), "--problems",
             std::to_string(o.eval_problems), "--samples", std::to_string(o.eval_samples),
             "--max-new-tokens", std::to_string(o.eval_max_new_tokens), "--seed", "1", "--threads",
             "2", "--out", base_eval_path.string()},
            dir / "eval_base.log") != 0 ||
        !ReadJson(base_eval_path, &base_eval)) {
      std::fprintf(stderr, "rl_compare_bench: treepo eval of the base failed; see %s\n",
                   (dir / "eval_base.log").c_str());
      return 1;
    }
  }

  std::map<std::string, std::vector<RunResult>> results;
  for (int seed = 1; seed <= o.seeds; ++seed) {
    for (const Arm& arm : arms) {  // interleaved, so machine drift hits every arm alike
      RunResult r;
      if (!RunArm(o, arm, seed, base, base_eval, dir, &r)) return 1;
      results[arm.name].push_back(std::move(r));
    }
  }

  std::ostringstream md;
  auto emit = [&](const std::string& s) {
    std::fputs(s.c_str(), stdout);
    md << s;
  };
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "RL on the %s task: base %s, %d steps x %d queries x w=%d, lr %s, held-out %d "
                "problems (greedy + %d samples at T=1); mean [min-max] over %d seed(s)%s%s\n\n",
                o.task.c_str(), base.filename().c_str(), o.steps, o.queries, o.width,
                o.lr.empty() ? "of the config" : o.lr.c_str(), o.eval_problems, o.eval_samples,
                o.seeds, o.config.empty() ? "" : "; config ",
                o.config.empty() ? "" : fs::path(o.config).filename().c_str());
  emit(buf);
  if (!o.sets.empty()) {
    std::string s = "Keys set for every arm:";
    for (const std::string& k : o.sets) s += " `" + k + "`";
    emit(s + "\n\n");
  }
  emit(
      "| arm | greedy base -> final | pass@1 base -> final | Maj@k base -> final | RL wall s | "
      "rollout tokens | training tokens |\n|---|---|---|---|---|---|---|\n");
  json out = json::object();
  out["task"] = o.task;
  out["steps"] = o.steps;
  out["queries"] = o.queries;
  out["width"] = o.width;
  out["lr"] = o.lr.empty() ? (o.task == "reasoning" ? "5e-5" : "2e-5") : o.lr;
  out["seeds"] = o.seeds;
  out["block"] = o.block;
  out["eval_problems"] = o.eval_problems;
  out["eval_samples"] = o.eval_samples;
  out["sets"] = o.sets;
  for (const Arm& arm : arms) {
    const std::vector<RunResult>& runs = results[arm.name];
    const size_t last = runs[0].points.size() - 1;
    auto both = [&](double Point::*f) {
      return Pct(Over(runs, 0, f)) + " -> " + Pct(Over(runs, last, f));
    };
    emit("| " + arm.name + " | " + both(&Point::greedy) + " | " + both(&Point::pass1) + " | " +
         both(&Point::majk) + " | " + Wall(Over(runs, last, &Point::wall_s)) + " | " +
         Tokens(Over(runs, last, &Point::rollout_tokens)) + " | " +
         Tokens(Over(runs, last, &Point::train_tokens)) + " |\n");
    json a;
    a["mode"] = arm.mode;
    a["estimator"] = arm.estimator;
    a["sets"] = arm.sets;
    for (size_t i = 0; i <= last; ++i) {
      json p;
      p["step"] = runs[0].points[i].step;
      for (auto [key, f] : {std::pair{"greedy", &Point::greedy},
                            {"pass_at_1", &Point::pass1},
                            {"maj_at_k", &Point::majk},
                            {"pass_at_k", &Point::passk},
                            {"wall_s", &Point::wall_s},
                            {"rollout_tokens", &Point::rollout_tokens},
                            {"train_tokens", &Point::train_tokens}}) {
        p[key] = StatJson(Over(runs, i, f));
        for (const RunResult& r : runs) p[std::string(key) + "_seeds"].push_back(r.points[i].*f);
      }
      a["points"].push_back(p);
    }
    out["arms"][arm.name] = a;
  }

  for (const Arm& arm : arms) {
    const std::vector<RunResult>& runs = results[arm.name];
    emit("\n" + arm.name +
         ": held-out curve (greedy, pass@1 and Maj@k at T=1) with cumulative RL wall s, rollout "
         "tokens and training tokens\n\n| step | greedy | pass@1 | Maj@k | wall s | rollout "
         "tokens | training tokens |\n|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < runs[0].points.size(); ++i) {
      emit("| " + std::to_string(runs[0].points[i].step) + " | " +
           Pct(Over(runs, i, &Point::greedy)) + " | " + Pct(Over(runs, i, &Point::pass1)) + " | " +
           Pct(Over(runs, i, &Point::majk)) + " | " + Wall(Over(runs, i, &Point::wall_s)) + " | " +
           Tokens(Over(runs, i, &Point::rollout_tokens)) + " | " +
           Tokens(Over(runs, i, &Point::train_tokens)) + " |\n");
    }
  }

  // First checkpoint after the base whose seed-mean pass@1 reaches `target`: its index, or -1.
  auto first = [&](const std::string& arm, double target) {
    const std::vector<RunResult>& runs = results[arm];
    for (size_t i = 1; i < runs[0].points.size(); ++i) {
      if (Over(runs, i, &Point::pass1).mean >= target - 1e-12) return static_cast<int>(i);
    }
    return -1;
  };
  const double base_p1 = base_eval.value("pass_at_1", 0.0);
  std::vector<std::pair<std::string, double>> targets;
  for (double gain : {0.05, 0.10, 0.20}) {
    std::snprintf(buf, sizeof buf, "%.1f%% (base +%.0f pts)", 100 * (base_p1 + gain), 100 * gain);
    targets.push_back({buf, base_p1 + gain});
  }
  const bool have_grpo = results.count("GRPO") > 0;
  Stat grpo_final;
  size_t grpo_last = 0;
  if (have_grpo) {
    grpo_last = results["GRPO"][0].points.size() - 1;
    grpo_final = Over(results["GRPO"], grpo_last, &Point::pass1);
    std::snprintf(buf, sizeof buf, "%.1f%% (GRPO final, lowest seed)", 100 * grpo_final.lo);
    targets.push_back({buf, grpo_final.lo});
    std::snprintf(buf, sizeof buf, "%.1f%% (GRPO final, mean)", 100 * grpo_final.mean);
    targets.push_back({buf, grpo_final.mean});
  }
  emit(
      "\nFirst checkpoint at which the seed-mean held-out pass@1 reaches a target: step, RL wall "
      "s, rollout tokens (and, with GRPO, the ratio to GRPO's wall s / rollout tokens at its "
      "own first checkpoint reaching it)\n\n| target |");
  for (const Arm& arm : arms) emit(" " + arm.name + " |");
  emit("\n|---|");
  for (size_t i = 0; i < arms.size(); ++i) emit("---|");
  emit("\n");
  for (const auto& [label, target] : targets) {
    emit("| " + label + " |");
    const int g = have_grpo ? first("GRPO", target) : -1;
    for (const Arm& arm : arms) {
      const std::vector<RunResult>& runs = results[arm.name];
      const int i = first(arm.name, target);
      json t = {{"target", target}, {"label", label}};
      if (i < 0) {
        emit(" not reached |");
        t["reached"] = false;
      } else {
        const double w = Over(runs, i, &Point::wall_s).mean;
        const double tok = Over(runs, i, &Point::rollout_tokens).mean;
        std::snprintf(buf, sizeof buf, " %d / %.1f s / %.0f", runs[0].points[i].step, w, tok);
        std::string cell = buf;
        t["reached"] = true;
        t["step"] = runs[0].points[i].step;
        t["wall_s"] = w;
        t["rollout_tokens"] = tok;
        if (g > 0) {
          const double gw = Over(results["GRPO"], g, &Point::wall_s).mean;
          const double gt = Over(results["GRPO"], g, &Point::rollout_tokens).mean;
          std::snprintf(buf, sizeof buf, " (%.2fx / %.2fx)", w / gw, tok / gt);
          cell += buf;
          t["wall_ratio_to_grpo"] = w / gw;
          t["tokens_ratio_to_grpo"] = tok / gt;
        }
        emit(cell + " |");
      }
      out["arms"][arm.name]["first_reach"].push_back(t);
    }
    emit("\n");
  }
  if (have_grpo) {
    const double gw = Over(results["GRPO"], grpo_last, &Point::wall_s).mean;
    const double gt = Over(results["GRPO"], grpo_last, &Point::rollout_tokens).mean;
    std::snprintf(buf, sizeof buf,
                  "\nTarget: reach GRPO's final pass@1 within the seeds' spread (>= %.1f%%) in at "
                  "most 0.7x GRPO's RL wall s (%.1f) and rollout tokens (%.0f):\n\n",
                  100 * grpo_final.lo, gw, gt);
    emit(buf);
    const bool void_target = grpo_final.lo <= base_p1;
    out["target_void"] = void_target;
    if (void_target) {
      std::snprintf(buf, sizeof buf,
                    "(Void: GRPO's lowest final seed, %.1f%%, is not above the base's %.1f%%: "
                    "GRPO did not improve, so reaching its final accuracy says nothing.)\n\n",
                    100 * grpo_final.lo, 100 * base_p1);
      emit(buf);
    }
    for (const Arm& arm : arms) {
      if (arm.name == "GRPO") continue;
      const int i = first(arm.name, grpo_final.lo);
      if (i < 0) {
        emit("- " + arm.name + ": not met (never reaches it)\n");
        out["arms"][arm.name]["target_met"] = false;
        continue;
      }
      const double w = Over(results[arm.name], i, &Point::wall_s).mean / gw;
      const double t = Over(results[arm.name], i, &Point::rollout_tokens).mean / gt;
      const bool met = w <= 0.7 && t <= 0.7;
      std::snprintf(buf, sizeof buf, "- %s: %s (step %d: %.2fx wall s, %.2fx rollout tokens)\n",
                    arm.name.c_str(), met ? "met" : "not met", results[arm.name][0].points[i].step,
                    w, t);
      emit(buf);
      out["arms"][arm.name]["target_met"] = met;
      out["arms"][arm.name]["target_wall_ratio"] = w;
      out["arms"][arm.name]["target_tokens_ratio"] = t;
    }
  }
  if (!o.json_path.empty()) std::ofstream(o.json_path) << out.dump(2) << "\n";
  if (!o.md_path.empty()) std::ofstream(o.md_path) << md.str();
  if (o.keep_dir.empty()) fs::remove_all(dir);
  return 0;
}

// rollout_bench: TreePO tree sampling against sequential sampling on the same workers, model,
// prompts and length budget, side by side in one run, through the real `treepo rollout`
// command (scheduler in process + N worker child processes on loopback).
//
// For each width w (default 16 and 64; b = 2, d = 8, L = 32, temperature 1) it runs
// `treepo rollout --mode tree` and `--mode sequential` on a handful of story prompts with
// stories260K, reads each run's --summary-out JSON and prints per run: trajectories/s,
// tokens/s (decoded tokens / wall), tokens computed (decoded + prefilled) per trajectory,
// tokens computed / unique tree tokens and wall time; then per w the ratios tree/sequential:
// wall-clock speed-up against the token saving (sequential tokens computed / tree tokens
// computed) and the speed-up as a fraction of the saving. Each configuration runs --reps
// times (default 2, interleaved) and the run with the shortest wall time is kept.
// Computed/unique is the summary's: tokens prefilled + decoded over every tree node's tokens
// plus each prompt once (target <= 1.02 in both modes, docs/placement.md).
//
// --placement-compare: instead, the migration benchmark: tree mode at the first width with
// worker-1 slowed by --slow-step-ms per engine step, once per placement policy (wait,
// recompute, migrate, cost), printing wall time, tokens computed, recomputed and migrated.
//
// Usage: rollout_bench [--json FILE] [--treepo PATH] [--model FILE] [--tokenizer FILE]
//          [--workers N] [--worker-threads N] [--worker-pages N] [--widths 16,64]
//          [--segment-tokens L] [--max-depth D] [--branch B] [--prompts N] [--reps N]
//          [--seed S] [--heartbeat-timeout-ms N (default 60000)] [--keep DIR]
//          [--placement-compare 1 [--slow-step-ms N (default 20)]]
// The model is looked up in $TREEPO_SHARED_DIR (else <source>/../shared)/models/stories260K;
// the benchmark prints a message and exits 0 when it is absent.
#include <sys/wait.h>
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

const char* const kStoryPrompts[] = {"Once upon a time",           "The little dog",
                                     "One day, a girl named Lily", "Tom and his mom went to",
                                     "There was a big red ball",   "The sun was shining and",
                                     "A small bird sat on a tree", "Sam had a new toy"};
constexpr int kMaxPrompts = sizeof(kStoryPrompts) / sizeof(kStoryPrompts[0]);

struct Options {
  std::string json_path, treepo, model, tokenizer, keep_dir;
  int workers = 2, worker_threads = 1, worker_pages = 8192;
  std::vector<int> widths = {16, 64};
  int segment_tokens = 32, max_depth = 8, branch = 2, prompts = 4, reps = 2;
  int seed = 1;
  // The scheduler's heartbeat_timeout_ms: longer than the default 5 s because a worker
  // heartbeats between engine steps, and on a loaded machine a step can stall that long.
  int heartbeat_timeout_ms = 60000;
  int placement_compare = 0;
  int slow_step_ms = 20;
};

struct RunResult {
  double wall_s = 0, trajectories_per_s = 0, tokens_per_s = 0;
  int64_t leaves = 0, tokens_decoded = 0, tokens_prefilled = 0, unique_tree_tokens = 0;
  int64_t segments = 0, tasks = 0, redispatched = 0;
  int64_t tokens_unique = 0, tokens_recomputed = 0, kv_migrations = 0, kv_bytes_migrated = 0;
  int64_t tasks_waited = 0, kv_evictions = 0;
  nlohmann::json worker_utilisation;
  std::string command;

  int64_t computed() const { return tokens_decoded + tokens_prefilled; }
  double computed_per_trajectory() const {
    return leaves > 0 ? static_cast<double>(computed()) / leaves : 0.0;
  }
  double computed_over_unique() const {
    return tokens_unique > 0 ? static_cast<double>(computed()) / tokens_unique : 0.0;
  }
};

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::vector<int> ParseIntList(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::atoi(item.c_str()));
  return out;
}

// Runs one `treepo rollout`; false (with a message) when it fails or its summary is unreadable.
bool RunRollout(const Options& o, const fs::path& dir, const fs::path& prompts,
                const std::string& mode, int width, int rep, RunResult* out,
                const std::string& extra = "", const std::string& tag_suffix = "") {
  const std::string tag =
      mode + "_w" + std::to_string(width) + "_r" + std::to_string(rep) + tag_suffix;
  const fs::path summary = dir / (tag + ".summary.json");
  const fs::path log = dir / (tag + ".log");
  std::string cmd =
      Quote(o.treepo) + " rollout --model " + Quote(o.model) + " --tokenizer " +
      Quote(o.tokenizer) + " --prompts " + Quote(prompts.string()) + " --workers " +
      std::to_string(o.workers) + " --worker-threads " + std::to_string(o.worker_threads) +
      " --worker-pages " + std::to_string(o.worker_pages) + " --mode " + mode + " --width " +
      std::to_string(width) + " --segment-tokens " + std::to_string(o.segment_tokens) +
      " --max-depth " + std::to_string(o.max_depth) + " --branch " + std::to_string(o.branch) +
      " --temperature 1 --seed " + std::to_string(o.seed) + " --max-concurrent-queries " +
      std::to_string(o.prompts) +
      " --set progress=false --set heartbeat_timeout_ms=" + std::to_string(o.heartbeat_timeout_ms) +
      " --summary-out " + Quote(summary.string()) + extra;
  out->command = cmd;
  const int st = std::system((cmd + " >" + Quote(log.string()) + " 2>&1").c_str());
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    std::fprintf(stderr, "%s failed (exit status %d); log: %s\n", tag.c_str(),
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, log.string().c_str());
    return false;
  }
  std::ifstream in(summary);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    std::fprintf(stderr, "%s: unreadable summary %s\n", tag.c_str(), summary.string().c_str());
    return false;
  }
  out->wall_s = j.value("wall_s", 0.0);
  out->trajectories_per_s = j.value("trajectories_per_s", 0.0);
  out->tokens_per_s = j.value("tokens_per_s", 0.0);
  out->leaves = j.value("leaves", int64_t{0});
  out->tokens_decoded = j.value("tokens_decoded", int64_t{0});
  out->tokens_prefilled = j.value("tokens_prefilled", int64_t{0});
  out->unique_tree_tokens = j.value("unique_tree_tokens", int64_t{0});
  out->segments = j.value("segments", int64_t{0});
  out->tasks = j.value("tasks", int64_t{0});
  out->redispatched = j.value("redispatched_tasks", int64_t{0});
  out->tokens_unique = j.value("tokens_unique", int64_t{0});
  out->tokens_recomputed = j.value("tokens_recomputed", int64_t{0});
  out->kv_migrations = j.value("kv_migrations", int64_t{0});
  out->kv_bytes_migrated = j.value("kv_bytes_migrated", int64_t{0});
  out->tasks_waited = j.value("tasks_waited", int64_t{0});
  out->kv_evictions = j.value("kv_evictions", int64_t{0});
  out->worker_utilisation = j.value("worker_utilisation", nlohmann::json::object());
  return true;
}

nlohmann::json RunJson(const std::string& mode, int width, const RunResult& r) {
  return {{"mode", mode},
          {"width", width},
          {"wall_s", r.wall_s},
          {"trajectories", r.leaves},
          {"trajectories_per_s", r.trajectories_per_s},
          {"tokens_per_s", r.tokens_per_s},
          {"tokens_decoded", r.tokens_decoded},
          {"tokens_prefilled", r.tokens_prefilled},
          {"tokens_computed", r.computed()},
          {"tokens_computed_per_trajectory", r.computed_per_trajectory()},
          {"unique_tree_tokens", r.unique_tree_tokens},
          {"tokens_unique", r.tokens_unique},
          {"computed_over_unique", r.computed_over_unique()},
          {"tokens_recomputed", r.tokens_recomputed},
          {"kv_migrations", r.kv_migrations},
          {"kv_bytes_migrated", r.kv_bytes_migrated},
          {"tasks_waited", r.tasks_waited},
          {"kv_evictions", r.kv_evictions},
          {"segments", r.segments},
          {"tasks", r.tasks},
          {"redispatched_tasks", r.redispatched},
          {"worker_utilisation", r.worker_utilisation},
          {"command", r.command}};
}

void Usage() {
  std::fprintf(
      stderr,
      "usage: rollout_bench [--json FILE] [--treepo PATH] [--model FILE] "
      "[--tokenizer FILE] [--workers N] [--worker-threads N] [--worker-pages N] "
      "[--widths 16,64] [--segment-tokens L] [--max-depth D] [--branch B] "
      "[--prompts N (<= %d)] [--reps N] [--seed S] [--heartbeat-timeout-ms N] [--keep DIR] "
      "[--placement-compare 1 [--slow-step-ms N]]\n",
      kMaxPrompts);
}

// The migration benchmark: one slow worker, each placement policy in turn.
int ComparePlacement(const Options& o, const fs::path& dir, const fs::path& prompts) {
  const int w = o.widths.front();
  const std::vector<std::string> policies = {"wait", "recompute", "migrate", "cost"};
  std::map<std::string, RunResult> best;
  for (int rep = 0; rep < o.reps; ++rep) {
    for (const std::string& policy : policies) {
      RunResult r;
      const std::string extra =
          " --set placement_policy=" + policy +
          " --set debug_slow_worker_step_ms=" + std::to_string(o.slow_step_ms);
      if (!RunRollout(o, dir, prompts, "tree", w, rep, &r, extra, "_" + policy)) return 1;
      std::fprintf(stderr, "rep %d %s: %.2f s\n", rep + 1, policy.c_str(), r.wall_s);
      auto it = best.find(policy);
      if (it == best.end() || r.wall_s < it->second.wall_s) best[policy] = r;
    }
  }
  std::printf(
      "placement: stories260K, tree mode, w=%d, %d prompts, %d workers (worker-1 sleeps %d ms "
      "per engine step), b=%d d=%d L=%d, best of %d\n\n",
      w, o.prompts, o.workers, o.slow_step_ms, o.branch, o.max_depth, o.segment_tokens, o.reps);
  std::printf(
      "| policy | wall s | tokens computed | computed/unique | recomputed | migrations | "
      "KV MB moved | tasks waited |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
  nlohmann::json runs = nlohmann::json::array();
  for (const std::string& policy : policies) {
    const RunResult& r = best[policy];
    std::printf(
        "| %s | %.2f | %lld | %.3f | %lld | %lld | %.2f | %lld |\n", policy.c_str(), r.wall_s,
        static_cast<long long>(r.computed()), r.computed_over_unique(),
        static_cast<long long>(r.tokens_recomputed), static_cast<long long>(r.kv_migrations),
        static_cast<double>(r.kv_bytes_migrated) / 1e6, static_cast<long long>(r.tasks_waited));
    nlohmann::json j = RunJson("tree", w, r);
    j["policy"] = policy;
    runs.push_back(j);
  }
  const double cost = best["cost"].wall_s;
  const bool beats = cost < best["wait"].wall_s && cost < best["recompute"].wall_s;
  std::printf("\ncost model beats wait-only and recompute-only: %s\n", beats ? "yes" : "no");
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << nlohmann::json{{"benchmark", "placement"},
                          {"slow_step_ms", o.slow_step_ms},
                          {"runs", runs},
                          {"cost_beats_wait_and_recompute", beats}}
               .dump(2)
        << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const fs::path shared = treepo::testing::SharedDir();
  o.treepo = treepo::testing::TreepoBinary();
  o.model = (shared / "models/stories260K/stories260K.bin").string();
  o.tokenizer = (shared / "models/stories260K/tok512.bin").string();
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
    std::map<std::string, int*> ints = {{"--workers", &o.workers},
                                        {"--worker-threads", &o.worker_threads},
                                        {"--worker-pages", &o.worker_pages},
                                        {"--segment-tokens", &o.segment_tokens},
                                        {"--max-depth", &o.max_depth},
                                        {"--branch", &o.branch},
                                        {"--prompts", &o.prompts},
                                        {"--reps", &o.reps},
                                        {"--seed", &o.seed},
                                        {"--heartbeat-timeout-ms", &o.heartbeat_timeout_ms},
                                        {"--placement-compare", &o.placement_compare},
                                        {"--slow-step-ms", &o.slow_step_ms}};
    std::map<std::string, std::string*> strs = {{"--json", &o.json_path},
                                                {"--treepo", &o.treepo},
                                                {"--model", &o.model},
                                                {"--tokenizer", &o.tokenizer},
                                                {"--keep", &o.keep_dir}};
    if (auto it = ints.find(a); it != ints.end()) {
      *it->second = std::atoi(v.c_str());
    } else if (auto s = strs.find(a); s != strs.end()) {
      *s->second = v;
    } else if (a == "--widths") {
      o.widths = ParseIntList(v);
    } else {
      Usage();
      return 2;
    }
  }
  if (o.prompts < 1 || o.prompts > kMaxPrompts || o.reps < 1 || o.workers < 1 || o.widths.empty()) {
    Usage();
    return 2;
  }
  if (!fs::exists(o.model) || !fs::exists(o.tokenizer)) {
    std::printf(
        "rollout_bench: skipped, model not found (%s, %s); set TREEPO_SHARED_DIR or "
        "--model/--tokenizer\n",
        o.model.c_str(), o.tokenizer.c_str());
    return 0;
  }
  if (!fs::exists(o.treepo)) {
    std::fprintf(stderr,
                 "rollout_bench: no treepo binary at %s (build target treepo or pass "
                 "--treepo)\n",
                 o.treepo.c_str());
    return 1;
  }
  const fs::path dir =
      o.keep_dir.empty()
          ? fs::temp_directory_path() / ("treepo_rollout_bench_" + std::to_string(::getpid()))
          : fs::path(o.keep_dir);
  fs::create_directories(dir);
  const fs::path prompts = dir / "prompts.jsonl";
  {
    std::ofstream p(prompts);
    for (int i = 0; i < o.prompts; ++i) {
      p << nlohmann::json{{"id", "story-" + std::to_string(i + 1)},
                          {"prompt", kStoryPrompts[i]},
                          {"answer", ""}}
               .dump()
        << "\n";
    }
  }

  if (o.placement_compare != 0) return ComparePlacement(o, dir, prompts);

  // best[w][mode]: the shortest-wall run of each configuration; reps interleave the modes.
  const std::vector<std::string> modes = {"tree", "sequential"};
  std::map<int, std::map<std::string, RunResult>> best;
  for (int rep = 0; rep < o.reps; ++rep) {
    for (int w : o.widths) {
      for (const std::string& mode : modes) {
        RunResult r;
        if (!RunRollout(o, dir, prompts, mode, w, rep, &r)) return 1;
        std::fprintf(stderr, "rep %d w=%d %s: %.2f s\n", rep + 1, w, mode.c_str(), r.wall_s);
        auto it = best[w].find(mode);
        if (it == best[w].end() || r.wall_s < it->second.wall_s) best[w][mode] = r;
      }
    }
  }

  std::printf(
      "rollout: stories260K, %d prompts, %d workers x %d BLAS thread(s), b=%d d=%d "
      "L=%d, temperature 1, best of %d\n\n",
      o.prompts, o.workers, o.worker_threads, o.branch, o.max_depth, o.segment_tokens, o.reps);
  std::printf(
      "| mode | w | trajectories/s | tokens/s | computed/trajectory | "
      "computed/unique | recomputed | migrations | wall s |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  nlohmann::json runs = nlohmann::json::array(), ratios = nlohmann::json::array();
  for (int w : o.widths) {
    for (const std::string& mode : modes) {
      const RunResult& r = best[w][mode];
      std::printf("| %s | %d | %.1f | %.0f | %.1f | %.3f | %lld | %lld | %.2f |\n", mode.c_str(), w,
                  r.trajectories_per_s, r.tokens_per_s, r.computed_per_trajectory(),
                  r.computed_over_unique(), static_cast<long long>(r.tokens_recomputed),
                  static_cast<long long>(r.kv_migrations), r.wall_s);
      runs.push_back(RunJson(mode, w, r));
    }
  }
  std::printf(
      "\n| w | speed-up (seq wall / tree wall) | token saving (seq computed / tree "
      "computed) | speed-up / saving | both modes computed within 2%% of unique |\n"
      "|---:|---:|---:|---:|---|\n");
  for (int w : o.widths) {
    const RunResult& t = best[w]["tree"];
    const RunResult& s = best[w]["sequential"];
    const double speedup = t.wall_s > 0 ? s.wall_s / t.wall_s : 0.0;
    const double saving = t.computed() > 0 ? static_cast<double>(s.computed()) / t.computed() : 0.0;
    const double fraction = saving > 0 ? speedup / saving : 0.0;
    const bool within = t.computed_over_unique() <= 1.02 && s.computed_over_unique() <= 1.02;
    std::printf("| %d | %.2fx | %.2fx | %.0f%% | %s (%.3f, %.3f) |\n", w, speedup, saving,
                fraction * 100, within ? "yes" : "no", t.computed_over_unique(),
                s.computed_over_unique());
    ratios.push_back({{"width", w},
                      {"speedup", speedup},
                      {"token_saving", saving},
                      {"speedup_over_saving", fraction},
                      {"tree_computed_over_unique", t.computed_over_unique()},
                      {"target_speedup_over_saving", 0.9},
                      {"sequential_computed_over_unique", s.computed_over_unique()},
                      {"target_computed_over_unique", 1.02},
                      {"meets_speedup_target", fraction >= 0.9},
                      {"meets_computed_target", within}});
  }
  std::printf(
      "\ntargets: tokens computed <= 1.02 x unique tokens in both modes; speed-up >= 90%% "
      "of the token saving\n");
  if (!o.json_path.empty()) {
    nlohmann::json j = {{"benchmark", "rollout"},
                        {"model", o.model},
                        {"prompts", o.prompts},
                        {"workers", o.workers},
                        {"worker_threads", o.worker_threads},
                        {"branch", o.branch},
                        {"max_depth", o.max_depth},
                        {"segment_tokens", o.segment_tokens},
                        {"temperature", 1.0},
                        {"seed", o.seed},
                        {"reps", o.reps},
                        {"runs", runs},
                        {"ratios", ratios}};
    std::ofstream out(o.json_path);
    out << j.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", o.json_path.c_str());
      return 1;
    }
  }
  if (o.keep_dir.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return 0;
}

#include "scheduler/dashboard/exposition.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace treepo::scheduler::dashboard {
namespace {

// Shortest round-trip form of a value, with the format's spellings of the special values.
std::string Num(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  // Prefer the short form when it reads back the same.
  char shorter[32];
  std::snprintf(shorter, sizeof(shorter), "%.6g", v);
  return std::strtod(shorter, nullptr) == v ? shorter : buf;
}

class Writer {
 public:
  void Family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // `labels` is "" or `k="v",k2="v2"` (values escaped).
  void Sample(const std::string& name, const std::string& labels, double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += Num(value);
    out_ += '\n';
  }
  void One(const char* name, const char* type, const char* help, double value) {
    Family(name, type, help);
    Sample(name, "", value);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string WorkerLabels(const WorkerView& w) {
  return "worker=\"" + EscapeLabelValue(w.name) + "\",id=\"" + std::to_string(w.id) + "\"";
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string PrometheusText(const DashboardSnapshot& s) {
  Writer w;
  const SchedulerTotals& t = s.totals;
  auto d = [](int64_t v) { return static_cast<double>(v); };
  w.One("treepo_scheduler_uptime_seconds", "gauge", "Seconds since the dashboard started.",
        s.uptime_s);
  w.One("treepo_segment_tasks_submitted_total", "counter", "Segment tasks submitted for dispatch.",
        d(t.tasks_submitted));
  w.One("treepo_segment_task_results_total", "counter", "Segment task results accepted.",
        d(t.task_results));
  w.One("treepo_segment_task_rejections_total", "counter",
        "Segment tasks a worker refused (re-dispatched).", d(t.task_rejections));
  w.One("treepo_segments_total", "counter", "Tree nodes computed (child results accepted).",
        d(t.segments));
  w.One("treepo_tokens_decoded_total", "counter", "Tokens sampled by the workers.",
        d(t.tokens_decoded));
  w.One("treepo_tokens_prefilled_total", "counter",
        "Prefix positions the workers prefilled for accepted tasks.", d(t.tokens_prefilled));
  w.One("treepo_tokens_recomputed_total", "counter",
        "Prefilled positions whose KV existed on another worker.", d(t.tokens_recomputed));
  w.One("treepo_kv_migrations_total", "counter", "KV subtrees moved between workers.",
        d(t.kv_migrations));
  w.One("treepo_kv_migrated_bytes_total", "counter", "Bytes of KV moved between workers.",
        d(t.kv_bytes_migrated));
  w.One("treepo_kv_evictions_total", "counter", "KV nodes evicted from worker pools.",
        d(t.kv_evictions));
  w.One("treepo_tasks_waited_total", "counter",
        "Tasks that waited in the queue for a worker with room.", d(t.tasks_waited));
  w.One("treepo_task_queue_depth", "gauge", "Segment tasks waiting for a worker.",
        d(t.queue_depth));
  w.One("treepo_tasks_in_flight", "gauge", "Segment tasks on workers.", d(t.in_flight));
  w.One("treepo_tasks_redispatched_total", "counter",
        "Tasks taken back (dead worker, missed deadline) and dispatched again.",
        d(t.redispatched_tasks));
  w.One("treepo_tasks_late_total", "counter", "Tasks that missed their deadline.", d(t.late_tasks));
  w.One("treepo_frames_received_total", "counter", "Frames the scheduler received.",
        d(t.frames_in));
  w.One("treepo_stale_messages_total", "counter",
        "Messages dropped as stale (fenced epoch, task not in flight).", d(t.stale_messages));
  w.Family("treepo_frames_rejected_total", "counter",
           "Frames dropped as bad, by reason (decode, role, unregistered, ...).");
  if (t.rejected_frames.empty()) w.Sample("treepo_frames_rejected_total", "reason=\"decode\"", 0);
  for (const auto& [reason, n] : t.rejected_frames) {
    w.Sample("treepo_frames_rejected_total", "reason=\"" + EscapeLabelValue(reason) + "\"", d(n));
  }
  w.One("treepo_workers_live", "gauge", "Workers registered and alive.", d(t.live_workers));
  w.One("treepo_workers_dead_total", "counter",
        "Workers declared dead (silent, exited, restarted or fenced).", d(t.dead_workers));
  w.One("treepo_workers_fenced_total", "counter",
        "Workers fenced for missing task deadlines in a row.", d(t.fenced_workers));
  w.One("treepo_weight_version", "gauge", "Weight version stamped on new tasks.",
        static_cast<double>(t.weight_version));

  struct PerWorker {
    const char* name;
    const char* type;
    const char* help;
    double (*get)(const WorkerView&);
  };
  static const PerWorker kPerWorker[] = {
      {"treepo_worker_up", "gauge", "1 while the worker is alive, 0 once dead or fenced.",
       [](const WorkerView& v) { return v.state == "dead" || v.state == "fenced" ? 0.0 : 1.0; }},
      {"treepo_worker_weight_version", "gauge", "Weight version the worker last reported.",
       [](const WorkerView& v) { return static_cast<double>(v.weight_version); }},
      {"treepo_worker_kv_pages_used", "gauge", "KV pages in use (latest heartbeat).",
       [](const WorkerView& v) { return static_cast<double>(v.pages_used); }},
      {"treepo_worker_kv_pages_free", "gauge", "KV pages free (latest heartbeat).",
       [](const WorkerView& v) { return static_cast<double>(v.pages_free); }},
      {"treepo_worker_kv_pages_capacity", "gauge", "KV pages of the worker's pool.",
       [](const WorkerView& v) { return static_cast<double>(v.pages_capacity); }},
      {"treepo_worker_tasks_in_flight", "gauge", "Tasks in flight on the worker.",
       [](const WorkerView& v) { return static_cast<double>(v.in_flight_tasks); }},
      {"treepo_worker_heartbeat_age_seconds", "gauge", "Seconds since the worker was heard from.",
       [](const WorkerView& v) { return static_cast<double>(v.heartbeat_age_ms) / 1000.0; }},
      {"treepo_worker_task_results_total", "counter", "Task results accepted from the worker.",
       [](const WorkerView& v) { return static_cast<double>(v.tasks_done); }},
      {"treepo_worker_segments_total", "counter", "Tree nodes the worker computed.",
       [](const WorkerView& v) { return static_cast<double>(v.segments_done); }},
      {"treepo_worker_tokens_decoded_total", "counter", "Tokens the worker sampled.",
       [](const WorkerView& v) { return static_cast<double>(v.tokens_decoded); }},
      {"treepo_worker_tokens_prefilled_total", "counter", "Prefix positions the worker prefilled.",
       [](const WorkerView& v) { return static_cast<double>(v.tokens_prefilled); }},
      {"treepo_worker_tokens_recomputed_total", "counter",
       "Positions the worker prefilled whose KV existed elsewhere.",
       [](const WorkerView& v) { return static_cast<double>(v.tokens_recomputed); }},
      {"treepo_worker_kv_migrations_in_total", "counter", "KV subtrees moved to the worker.",
       [](const WorkerView& v) { return static_cast<double>(v.kv_migrations_in); }},
      {"treepo_worker_kv_migrations_out_total", "counter", "KV subtrees moved off the worker.",
       [](const WorkerView& v) { return static_cast<double>(v.kv_migrations_out); }},
      {"treepo_worker_kv_migrated_bytes_total", "counter", "Bytes of KV moved to or from it.",
       [](const WorkerView& v) { return static_cast<double>(v.kv_bytes_migrated); }},
      {"treepo_worker_kv_evictions_total", "counter", "KV nodes evicted from the worker's pool.",
       [](const WorkerView& v) { return static_cast<double>(v.kv_evictions); }},
      {"treepo_worker_busy_ratio", "gauge",
       "Fraction of the worker's registered time with tasks in flight.",
       [](const WorkerView& v) { return v.busy_fraction; }},
  };
  for (const PerWorker& f : kPerWorker) {
    w.Family(f.name, f.type, f.help);
    for (const WorkerView& v : s.workers) w.Sample(f.name, WorkerLabels(v), f.get(v));
  }

  const LatencyHistogram& h = s.latency;
  w.Family("treepo_task_latency_seconds", "histogram",
           "Segment task latency from submission to accepted result.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.upper_bounds_s.size(); ++i) {
    cumulative += h.counts[i];
    w.Sample("treepo_task_latency_seconds_bucket", "le=\"" + Num(h.upper_bounds_s[i]) + "\"",
             static_cast<double>(cumulative));
  }
  w.Sample("treepo_task_latency_seconds_bucket", "le=\"+Inf\"", static_cast<double>(h.count));
  w.Sample("treepo_task_latency_seconds_sum", "", h.sum_s);
  w.Sample("treepo_task_latency_seconds_count", "", static_cast<double>(h.count));

  if (s.rl.active) {
    w.One("treepo_rl_step", "gauge", "Last finished RL step (-1 before the first).",
          static_cast<double>(s.rl.step));
    w.One("treepo_rl_steps", "gauge", "RL steps the run will take in total.",
          static_cast<double>(s.rl.steps_total));
    w.One("treepo_rl_reward_mean", "gauge", "Mean leaf reward of the last finished step.",
          s.rl.reward_mean);
    w.One("treepo_rl_accuracy_ratio", "gauge",
          "Fraction of leaves with a positive reward in the last finished step.", s.rl.accuracy);
    w.One("treepo_rl_step_seconds", "gauge", "Wall time of the last finished step.", s.rl.step_s);
    w.One("treepo_learner_step_seconds", "gauge", "The learner's own time for the last step.",
          s.rl.learner_step_s);
    w.One("treepo_weight_sync_seconds", "gauge",
          "Last step: from TrainDone until every worker ran the new weights.", s.rl.weight_sync_s);
  }
  return w.Take();
}

}  // namespace treepo::scheduler::dashboard

#include "scheduler/dashboard/api_json.h"

#include <algorithm>
#include <unordered_set>

namespace treepo::scheduler::dashboard {
namespace {

using nlohmann::json;

json WorkerJson(const WorkerView& w) {
  return {{"id", w.id},
          {"name", w.name},
          {"state", w.state},
          {"epoch", w.epoch},
          {"weight_version", w.weight_version},
          {"page_size", w.page_size},
          {"pages_capacity", w.pages_capacity},
          {"pages_used", w.pages_used},
          {"pages_free", w.pages_free},
          {"in_flight_tasks", w.in_flight_tasks},
          {"in_flight_sequences", w.in_flight_sequences},
          {"heartbeat_age_ms", w.heartbeat_age_ms},
          {"registered_unix_ms", w.registered_unix_ms},
          {"tasks_done", w.tasks_done},
          {"segments_done", w.segments_done},
          {"tokens_decoded", w.tokens_decoded},
          {"tokens_prefilled", w.tokens_prefilled},
          {"tokens_recomputed", w.tokens_recomputed},
          {"kv_migrations_in", w.kv_migrations_in},
          {"kv_migrations_out", w.kv_migrations_out},
          {"kv_bytes_migrated", w.kv_bytes_migrated},
          {"kv_evictions", w.kv_evictions},
          {"tasks_per_s", w.tasks_per_s},
          {"tokens_per_s", w.tokens_per_s},
          {"busy_fraction", w.busy_fraction}};
}

json TotalsJson(const SchedulerTotals& t) {
  return {{"tasks_submitted", t.tasks_submitted},
          {"task_results", t.task_results},
          {"task_rejections", t.task_rejections},
          {"segments", t.segments},
          {"tokens_decoded", t.tokens_decoded},
          {"tokens_prefilled", t.tokens_prefilled},
          {"tokens_recomputed", t.tokens_recomputed},
          {"kv_migrations", t.kv_migrations},
          {"kv_bytes_migrated", t.kv_bytes_migrated},
          {"kv_evictions", t.kv_evictions},
          {"tasks_waited", t.tasks_waited},
          {"frames_in", t.frames_in},
          {"stale_messages", t.stale_messages},
          {"rejected_frames", t.rejected_frames},
          {"dead_workers", t.dead_workers},
          {"fenced_workers", t.fenced_workers},
          {"redispatched_tasks", t.redispatched_tasks},
          {"late_tasks", t.late_tasks},
          {"queue_depth", t.queue_depth},
          {"in_flight", t.in_flight},
          {"live_workers", t.live_workers},
          {"weight_version", t.weight_version},
          {"tasks_per_s", t.tasks_per_s},
          {"tokens_per_s", t.tokens_per_s}};
}

json EventJson(const EventView& e) {
  return {{"seq", e.seq}, {"unix_ms", e.unix_ms}, {"kind", e.kind}, {"text", e.text}};
}

json NodeJson(const NodeView& n, const TokenDecoder* decode) {
  json j = {{"id", n.id},
            {"parent", n.parent},
            {"depth", n.depth},
            {"worker", n.worker},
            {"version", n.weight_version},
            {"pending", n.pending},
            {"tokens", n.tokens.size()},
            {"finish", n.finish},
            {"leaf", n.leaf},
            {"pruned", n.pruned}};
  if (n.leaf) j["reward"] = n.reward;
  if (decode != nullptr) {
    if (!n.text.empty() || n.pending) {
      j["text"] = n.text;
    } else {
      j["text"] = *decode ? (*decode)(n.tokens) : std::string();
    }
    j["token_ids"] = n.tokens;
  }
  return j;
}

}  // namespace

nlohmann::json ClusterJson(const DashboardSnapshot& s) {
  json workers = json::array();
  for (const WorkerView& w : s.workers) workers.push_back(WorkerJson(w));
  json learners = json::array();
  for (const LearnerView& l : s.learners) {
    learners.push_back({{"id", l.id},
                        {"name", l.name},
                        {"rank", l.rank},
                        {"world_size", l.world_size},
                        {"step_s", l.step_s},
                        {"sync_s", l.sync_s}});
  }
  json events = json::array();
  if (s.events) {
    const size_t n = s.events->size(), first = n > 100 ? n - 100 : 0;
    for (size_t i = first; i < n; ++i) events.push_back(EventJson((*s.events)[i]));
  }
  json latency = {{"upper_bounds_s", s.latency.upper_bounds_s},
                  {"counts", s.latency.counts},
                  {"sum_s", s.latency.sum_s},
                  {"count", s.latency.count}};
  return {{"seq", s.seq},
          {"unix_ms", s.unix_ms},
          {"uptime_s", s.uptime_s},
          {"run", s.run_name},
          {"scheduler", TotalsJson(s.totals)},
          {"workers", std::move(workers)},
          {"learners", std::move(learners)},
          {"latency", std::move(latency)},
          {"rl",
           {{"active", s.rl.active},
            {"step", s.rl.step},
            {"steps_total", s.rl.steps_total},
            {"reward_mean", s.rl.reward_mean},
            {"accuracy", s.rl.accuracy},
            {"learner_step_s", s.rl.learner_step_s},
            {"weight_sync_s", s.rl.weight_sync_s},
            {"step_s", s.rl.step_s}}},
          {"events", std::move(events)},
          {"config", s.config ? json(*s.config) : json::object()}};
}

nlohmann::json TreeSummaryJson(const TreeView& t) {
  int64_t pending = 0;
  for (const auto& n : t.nodes) pending += n->pending ? 1 : 0;
  return {{"key", t.key},
          {"step", t.step},
          {"index", t.index},
          {"query_id", t.query_id},
          {"finished", t.finished},
          {"nodes", t.nodes.size()},
          {"pending", pending},
          {"leaves", t.leaves},
          {"reward_mean", t.reward_mean},
          {"started_unix_ms", t.started_unix_ms},
          {"finished_unix_ms", t.finished_unix_ms},
          {"seq", t.seq}};
}

nlohmann::json QueriesJson(const DashboardSnapshot& s) {
  json running = json::array(), finished = json::array();
  for (const auto& t : s.trees) (t->finished ? finished : running).push_back(TreeSummaryJson(*t));
  return {{"seq", s.seq}, {"running", std::move(running)}, {"finished", std::move(finished)}};
}

nlohmann::json TreeJson(const TreeView& t, const TokenDecoder& decode) {
  json j = TreeSummaryJson(t);
  j["prompt"] = !t.prompt_text.empty() || !decode ? t.prompt_text : decode(t.prompt_tokens);
  j["answer"] = t.answer;
  json nodes = json::array();
  for (const auto& n : t.nodes) nodes.push_back(NodeJson(*n, &decode));
  j["tree"] = std::move(nodes);
  return j;
}

nlohmann::json MetricsJson(const DashboardSnapshot& s, size_t since) {
  json lines = json::array();
  const size_t n = s.metrics ? s.metrics->size() : 0;
  for (size_t i = since; i < n; ++i) lines.push_back((*s.metrics)[i].line);
  return {{"since", since}, {"next", std::max(n, since)}, {"lines", std::move(lines)}};
}

nlohmann::json DeltaJson(const DashboardSnapshot& s, uint64_t since_seq,
                         const std::vector<uint64_t>& known_trees) {
  json events = json::array();
  if (s.events) {
    for (const EventView& e : *s.events) {
      if (e.seq > since_seq) events.push_back(EventJson(e));
    }
  }
  json lines = json::array();
  if (s.metrics) {
    for (const MetricLine& m : *s.metrics) {
      if (m.seq > since_seq) lines.push_back(m.line);
    }
  }
  json trees = json::array();
  std::unordered_set<uint64_t> present;
  for (const auto& t : s.trees) {
    present.insert(t->key);
    if (t->seq <= since_seq) continue;
    json tj = TreeSummaryJson(*t);
    json nodes = json::array();
    for (const auto& n : t->nodes) {
      if (n->seq > since_seq) nodes.push_back(NodeJson(*n, nullptr));
    }
    tj["changed_nodes"] = std::move(nodes);
    trees.push_back(std::move(tj));
  }
  json removed = json::array();
  for (uint64_t k : known_trees) {
    if (present.count(k) == 0) removed.push_back(k);
  }
  json cluster = ClusterJson(s);
  cluster.erase("events");
  cluster.erase("config");
  return {{"type", "delta"},  {"seq", s.seq},     {"since", since_seq}, {"cluster", cluster},
          {"events", events}, {"metrics", lines}, {"trees", trees},     {"removed_trees", removed}};
}

const TreeView* FindTree(const DashboardSnapshot& s, uint64_t key) {
  for (const auto& t : s.trees) {
    if (t->key == key) return t.get();
  }
  return nullptr;
}

}  // namespace treepo::scheduler::dashboard

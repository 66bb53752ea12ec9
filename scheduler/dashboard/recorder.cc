#include "scheduler/dashboard/recorder.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "common/check.h"
#include "common/clock.h"

namespace treepo::scheduler::dashboard {
namespace {

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Rate(int64_t delta, int64_t ms) {
  return ms > 0 ? static_cast<double>(delta) * 1000.0 / static_cast<double>(ms) : 0.0;
}

}  // namespace

LatencyHistogram LatencyHistogram::WithDefaultBounds() {
  LatencyHistogram h;
  h.upper_bounds_s = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  h.counts.assign(h.upper_bounds_s.size() + 1, 0);
  return h;
}

void LatencyHistogram::Observe(double seconds) {
  const auto it = std::lower_bound(upper_bounds_s.begin(), upper_bounds_s.end(), seconds);
  ++counts[static_cast<size_t>(it - upper_bounds_s.begin())];
  sum_s += seconds;
  ++count;
}

SnapshotRecorder::SnapshotRecorder(const RecorderOptions& options, SnapshotPublisher* publisher)
    : options_(options), publisher_(publisher) {
  TREEPO_CHECK(publisher_ != nullptr);
  config_ = std::make_shared<const std::map<std::string, std::string>>();
}

void SnapshotRecorder::OnLoopTurn(const SchedulerService& service) {
  now_ms_ = service.NowMs();
  if (last_publish_ms_ >= 0 && now_ms_ - last_publish_ms_ < options_.publish_interval_ms) return;
  PublishNow(service);
}

void SnapshotRecorder::AddEvent(const std::string& kind, const std::string& text) {
  events_.push_back(EventView{NextSeq(), UnixMs(), kind, text});
  while (events_.size() > static_cast<size_t>(std::max(1, options_.max_events))) {
    events_.pop_front();
  }
  events_dirty_ = true;
}

void SnapshotRecorder::SetConfig(std::map<std::string, std::string> config) {
  config_ = std::make_shared<const std::map<std::string, std::string>>(std::move(config));
}

void SnapshotRecorder::SetStep(int64_t step, int64_t steps_total) {
  step_ = step;
  rl_.active = true;
  rl_.steps_total = steps_total;
}

void SnapshotRecorder::AddMetricLine(const nlohmann::json& line) {
  metrics_.push_back(MetricLine{NextSeq(), line});
  metrics_dirty_ = true;
  if (!line.is_object() || line.contains("eval")) return;
  rl_.active = true;
  rl_.step = line.value("step", rl_.step);
  rl_.reward_mean = line.value("reward_mean", rl_.reward_mean);
  rl_.accuracy = line.value("accuracy", rl_.accuracy);
  rl_.learner_step_s = line.value("learner_train_s", rl_.learner_step_s);
  rl_.weight_sync_s = line.value("sync_s", rl_.weight_sync_s);
  rl_.step_s = line.value("step_s", rl_.step_s);
  learner_times_.step_s = rl_.learner_step_s;
  learner_times_.sync_s = rl_.weight_sync_s;
  char text[160];
  std::snprintf(text, sizeof(text), "step %lld done: reward %+.3f, accuracy %.3f, %.1f s",
                static_cast<long long>(rl_.step), rl_.reward_mean, rl_.accuracy, rl_.step_s);
  AddEvent("step", text);
}

void SnapshotRecorder::RecordKvCounters(WorkerId worker, const KvCounters& counters) {
  WorkerStats& s = worker_stats_[worker.value()];
  extra_.tokens_recomputed += counters.tokens_recomputed - s.kv.tokens_recomputed;
  extra_.kv_migrations += counters.migrations_in - s.kv.migrations_in;
  extra_.kv_bytes_migrated += counters.bytes_migrated - s.kv.bytes_migrated;
  extra_.kv_evictions += counters.evictions - s.kv.evictions;
  s.kv = counters;
}

void SnapshotRecorder::RecordTasksWaited(int64_t total) { extra_.tasks_waited = total; }

void SnapshotRecorder::OnRolloutStarted(size_t) { query_key_.clear(); }

SnapshotRecorder::LiveTree& SnapshotRecorder::TreeFor(size_t query) {
  auto [it, added] = query_key_.try_emplace(query, 0);
  if (added) {
    it->second = next_key_++;
    LiveTree& t = running_[it->second];
    t.view.key = it->second;
    t.view.step = step_;
    t.view.index = static_cast<int64_t>(query);
    t.view.started_unix_ms = UnixMs();
  }
  return running_[it->second];
}

void SnapshotRecorder::OnQueryOpened(size_t query, const QueryTree* tree) {
  LiveTree& t = TreeFor(query);
  t.source = tree;
  if (tree != nullptr) t.view.prompt_tokens = tree->prompt_tokens();
  t.dirty = true;
}

namespace {

// The parent a node is drawn under: 0 for a node under the query's prompt.
uint64_t ShownParent(const std::optional<NodeId>& parent) { return parent ? parent->value() : 0; }

// How a live node shows its end: the path's finish reason once the sampler set one, else
// "eos" for a segment that ended with EOS.
std::string_view LiveFinish(const TreeNode& n) {
  if (n.finish != FinishReason::kNone) return FinishReasonName(n.finish);
  if (n.reported && n.segment_finish == protocols::SegmentFinish::kEos) return "eos";
  return "";
}

}  // namespace

void SnapshotRecorder::Refresh(LiveTree* tree, uint64_t seq) {
  if (tree->source == nullptr) return;
  const std::vector<TreeNode>& nodes = tree->source->nodes();
  std::vector<std::shared_ptr<const NodeView>>& shown = tree->view.nodes;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const TreeNode& n = nodes[i];
    const std::string_view finish = LiveFinish(n);
    if (i < shown.size() && shown[i]->pending == !n.reported && shown[i]->finish == finish) {
      continue;  // tokens, worker and version arrive with the answer and do not change after
    }
    auto v = std::make_shared<NodeView>();
    v->id = n.id.value();
    v->parent = ShownParent(n.parent);
    v->depth = n.depth;
    v->pending = !n.reported;
    if (n.reported) {
      v->worker = n.worker.value();
      v->weight_version = n.weight_version.value();
      v->tokens = n.tokens;
    }
    v->finish = std::string(finish);
    v->seq = seq;
    if (i < shown.size()) {
      shown[i] = std::move(v);
    } else {
      shown.push_back(std::move(v));
    }
    tree->dirty = true;
  }
}

void SnapshotRecorder::OnTaskSubmitted(size_t, const protocols::SegmentTask& task) {
  ++extra_.tasks_submitted;
  const uint64_t id = task.task_id.value();
  if (submit_ms_.empty()) submit_base_ = id;
  if (id >= submit_base_) {
    if (id - submit_base_ >= submit_ms_.size()) submit_ms_.resize(id - submit_base_ + 1, -1);
    submit_ms_[id - submit_base_] = SteadyNowMs();
  }
  // A task never answered (its rollout was stopped) must not hold the window forever.
  constexpr size_t kMaxWindow = size_t{1} << 20;
  while (submit_ms_.size() > kMaxWindow) {
    submit_ms_.pop_front();
    ++submit_base_;
  }
}

void SnapshotRecorder::OnTaskResult(size_t, const InFlightTask& task,
                                    const protocols::SegmentResult& result) {
  ++extra_.task_results;
  WorkerStats& w = worker_stats_[result.worker_id.value()];
  ++w.tasks;
  w.prefilled += result.prefilled_tokens;
  extra_.tokens_prefilled += result.prefilled_tokens;
  const uint64_t id = task.task.task_id.value();
  if (id >= submit_base_ && id - submit_base_ < submit_ms_.size() &&
      submit_ms_[id - submit_base_] >= 0) {
    int64_t& at = submit_ms_[id - submit_base_];
    latency_.Observe(static_cast<double>(std::max<int64_t>(0, SteadyNowMs() - at)) / 1000.0);
    at = -1;
    // The window starts at the oldest task still in flight.
    while (!submit_ms_.empty() && submit_ms_.front() < 0) {
      submit_ms_.pop_front();
      ++submit_base_;
    }
  }
  for (const protocols::ChildResult& c : result.children) {
    ++w.segments;
    ++extra_.segments;
    w.tokens += static_cast<int64_t>(c.tokens.size());
    extra_.tokens_decoded += static_cast<int64_t>(c.tokens.size());
  }
}

void SnapshotRecorder::OnQueryFinished(size_t query, const TreeRecord& tree) {
  Finished f;
  f.tree = &tree;
  f.finished_unix_ms = UnixMs();
  f.live = std::move(TreeFor(query));  // (numbered now if it was never opened)
  running_.erase(f.live.view.key);
  query_key_.erase(query);
  f.live.source = nullptr;  // the query's QueryTree goes away now
  finishing_.push_back(std::move(f));
  // Only the newest finished_trees can still be shown: older ones are never built.
  while (finishing_.size() > static_cast<size_t>(std::max(0, options_.finished_trees))) {
    finishing_.pop_front();
  }
}

void SnapshotRecorder::OnRolloutFinished() { BuildFinished(NextSeq()); }

void SnapshotRecorder::BuildFinished(uint64_t seq) {
  for (const Finished& f : finishing_) {
    finished_.push_front(FinishedView(f, seq));
    while (finished_.size() > static_cast<size_t>(std::max(0, options_.finished_trees))) {
      finished_.pop_back();
    }
  }
  finishing_.clear();
}

std::shared_ptr<const TreeView> SnapshotRecorder::FinishedView(const Finished& f, uint64_t seq) {
  const TreeRecord& tree = *f.tree;
  const LiveTree& live = f.live;
  auto view = std::make_shared<TreeView>();
  view->key = live.view.key;
  view->step = live.view.step;
  view->index = live.view.index;
  view->query_id = tree.query_id;
  view->finished = true;
  view->prompt_tokens = tree.prompt_tokens;
  view->prompt_text = tree.prompt;
  view->answer = tree.answer;
  view->started_unix_ms = live.view.started_unix_ms;
  view->finished_unix_ms = f.finished_unix_ms;
  view->seq = seq;
  // Sorted vectors, not node-per-entry containers: this runs once per query on the loop.
  std::vector<std::pair<uint64_t, const TreeLeafRecord*>> leaves;
  leaves.reserve(tree.leaves.size());
  for (const TreeLeafRecord& l : tree.leaves) leaves.emplace_back(l.node, &l);
  std::sort(leaves.begin(), leaves.end());
  std::vector<uint64_t> parents;
  parents.reserve(tree.nodes.size());
  for (const TreeNodeRecord& n : tree.nodes) {
    if (n.parent) parents.push_back(*n.parent);
  }
  std::sort(parents.begin(), parents.end());
  auto find_leaf = [&leaves](uint64_t id) -> const TreeLeafRecord* {
    auto it = std::lower_bound(leaves.begin(), leaves.end(),
                               std::pair<uint64_t, const TreeLeafRecord*>(id, nullptr));
    return it != leaves.end() && it->first == id ? it->second : nullptr;
  };
  std::vector<std::pair<uint64_t, size_t>> shown;  // the live nodes: (id, position)
  shown.reserve(live.view.nodes.size());
  for (size_t i = 0; i < live.view.nodes.size(); ++i) shown.emplace_back(live.view.nodes[i]->id, i);
  std::sort(shown.begin(), shown.end());
  double reward_sum = 0;
  view->nodes.reserve(tree.nodes.size());
  for (const TreeNodeRecord& r : tree.nodes) {
    // A node that was published live as it is now is shared with the live tree (its text is
    // decoded on request); path ends, cut paths, nodes the sampler changed and nodes no
    // publication showed answered are made here.
    const TreeLeafRecord* leaf = find_leaf(r.id);
    const bool cut = leaf == nullptr && !std::binary_search(parents.begin(), parents.end(), r.id);
    auto live_it =
        std::lower_bound(shown.begin(), shown.end(), std::pair<uint64_t, size_t>(r.id, 0));
    if (live_it != shown.end() && live_it->first == r.id && leaf == nullptr && !cut &&
        r.finish == FinishReason::kNone) {
      const std::shared_ptr<const NodeView>& n = live.view.nodes[live_it->second];
      if (!n->pending && n->tokens == r.tokens) {
        view->nodes.push_back(n);
        continue;
      }
    }
    auto n = std::make_shared<NodeView>();
    n->id = r.id;
    n->parent = r.parent.value_or(0);
    n->depth = r.depth;
    n->worker = r.worker;
    n->weight_version = r.weight_version;
    n->pending = false;
    n->tokens = r.tokens;
    n->text = r.text;
    n->finish = std::string(FinishReasonName(r.finish));
    if (leaf != nullptr) {
      n->leaf = true;
      n->reward = leaf->reward;
      reward_sum += leaf->reward;
      if (n->finish.empty()) n->finish = std::string(FinishReasonName(leaf->finish));
    }
    n->pruned = cut;
    n->seq = view->seq;
    view->nodes.push_back(std::move(n));
  }
  view->leaves = static_cast<int64_t>(tree.leaves.size());
  view->reward_mean = tree.leaves.empty() ? 0.0 : reward_sum / static_cast<double>(view->leaves);
  return view;
}

void SnapshotRecorder::DiffRegistry(const SchedulerService& service, int64_t unix_ms) {
  const WorkerRegistry& reg = service.registry();
  for (const auto& [id, w] : reg.workers()) {
    auto [it, added] = known_.try_emplace(id.value());
    Known& k = it->second;
    if (added) {
      auto dead = dead_names_.find(w.name);
      if (dead != dead_names_.end()) {
        AddEvent("restart", "worker " + w.name + " re-registered as #" +
                                std::to_string(id.value()) + " (was #" +
                                std::to_string(dead->second) + ")");
        dead_names_.erase(dead);
      } else {
        AddEvent("join", "worker " + w.name + " #" + std::to_string(id.value()) + " joined (" +
                             std::to_string(w.page_capacity) + " KV pages of " +
                             std::to_string(w.page_size) + " tokens)");
      }
      k.alive = true;
    }
    if (k.alive && !w.alive) {
      k.alive = false;
      dead_names_[w.name] = id.value();
      AddEvent(w.fenced ? "fence" : "death",
               "worker " + w.name + " #" + std::to_string(id.value()) +
                   (w.fenced ? " fenced: missed its task deadlines" : " declared dead"));
    }
    if (w.alive && w.load) {
      const uint64_t v = w.load->weight_version.value();
      if (!k.has_version || v != k.version) {
        if (k.has_version) {
          AddEvent("weights", "worker " + w.name + " now runs weights v" + std::to_string(v));
        }
        k.version = v;
        k.has_version = true;
      }
    }
  }
  for (const auto& [id, l] : reg.learners()) {
    if (known_learners_.try_emplace(id.value(), true).second) {
      AddEvent("learner", "learner " + l.name + " #" + std::to_string(id.value()) + " (rank " +
                              std::to_string(l.rank) + "/" + std::to_string(l.world_size) +
                              ") registered");
    }
  }
  (void)unix_ms;
}

void SnapshotRecorder::PublishNow(const SchedulerService& service) {
  now_ms_ = service.NowMs();
  const int64_t unix_ms = UnixMs();
  if (start_ms_ < 0) start_ms_ = now_ms_;
  DiffRegistry(service, unix_ms);
  auto s = std::make_shared<DashboardSnapshot>();
  s->seq = ++seq_;
  s->unix_ms = unix_ms;
  s->uptime_s = static_cast<double>(now_ms_ - start_ms_) / 1000.0;
  s->run_name = options_.run_name;

  SchedulerTotals& t = s->totals;
  t = extra_;
  const SchedulerService::Counters& c = service.counters();
  t.frames_in = c.frames_in;
  t.stale_messages = c.stale_messages;
  t.rejected_frames = c.bad_by_reason;
  t.task_rejections = c.rejections;
  t.dead_workers = c.dead_workers;
  t.fenced_workers = c.fenced_workers;
  t.redispatched_tasks = c.redispatched_tasks;
  t.late_tasks = c.late_tasks;
  // KV placement: the dispatcher's counters (docs/placement.md), plus any recorded by
  // RecordKvCounters / RecordTasksWaited.
  const PlacementCounters& pc = service.dispatcher().placement();
  t.tokens_recomputed += pc.tokens_recomputed;
  t.kv_migrations += pc.kv_migrations;
  t.kv_bytes_migrated += pc.kv_bytes_migrated;
  t.kv_evictions += pc.kv_evictions;
  t.tasks_waited = std::max(t.tasks_waited, pc.tasks_waited);
  t.queue_depth = static_cast<int64_t>(service.dispatcher().queued());
  t.in_flight = static_cast<int64_t>(service.dispatcher().in_flight());
  t.live_workers = service.registry().live_count();
  t.weight_version = service.weight_version().value();

  // Rates over the window: compare with the oldest sample no older than the window.
  RateSample now;
  now.ms = now_ms_;
  now.tasks = extra_.task_results;
  now.tokens = extra_.tokens_decoded;
  for (const auto& [id, w] : worker_stats_) now.by_worker[id] = {w.tasks, w.tokens};
  rate_samples_.push_back(now);
  while (rate_samples_.size() > 1 && now_ms_ - rate_samples_[1].ms >= options_.rate_window_ms) {
    rate_samples_.pop_front();
  }
  const RateSample& old = rate_samples_.front();
  const int64_t dt = now_ms_ - old.ms;
  t.tasks_per_s = Rate(now.tasks - old.tasks, dt);
  t.tokens_per_s = Rate(now.tokens - old.tokens, dt);

  const WorkerRegistry& reg = service.registry();
  for (const auto& [id, w] : reg.workers()) {
    WorkerView v;
    v.id = id.value();
    v.name = w.name;
    v.state = !w.alive ? (w.fenced ? "fenced" : "dead") : (w.in_flight_tasks > 0 ? "busy" : "idle");
    v.epoch = w.epoch;
    v.page_size = w.page_size;
    v.pages_capacity = w.page_capacity;
    if (w.load) {
      v.weight_version = w.load->weight_version.value();
      v.pages_used = w.load->used_pages;
      v.pages_free = w.load->free_pages;
    } else {
      v.pages_free = w.page_capacity;
    }
    v.in_flight_tasks = w.in_flight_tasks;
    v.in_flight_sequences = w.in_flight_sequences;
    v.heartbeat_age_ms = now_ms_ - w.last_seen_ms;
    v.registered_unix_ms = unix_ms - (now_ms_ - w.registered_ms);
    const double alive_ms = static_cast<double>(std::max<int64_t>(1, now_ms_ - w.registered_ms));
    v.busy_fraction = std::min(1.0, reg.BusyMs(id) / alive_ms);
    if (auto st = worker_stats_.find(id.value()); st != worker_stats_.end()) {
      const WorkerStats& ws = st->second;
      v.tasks_done = ws.tasks;
      v.segments_done = ws.segments;
      v.tokens_decoded = ws.tokens;
      v.tokens_prefilled = ws.prefilled;
      // KV placement, per worker (RecordKvCounters); counters kept in WorkerEntry are copied
      // here instead.
      v.tokens_recomputed = ws.kv.tokens_recomputed;
      v.kv_migrations_in = ws.kv.migrations_in;
      v.kv_migrations_out = ws.kv.migrations_out;
      v.kv_bytes_migrated = ws.kv.bytes_migrated;
      v.kv_evictions = ws.kv.evictions;
      auto o = old.by_worker.find(id.value());
      const auto base = o != old.by_worker.end() ? o->second : std::pair<int64_t, int64_t>{0, 0};
      if (w.alive) {
        v.tasks_per_s = Rate(ws.tasks - base.first, dt);
        v.tokens_per_s = Rate(ws.tokens - base.second, dt);
      }
    }
    s->workers.push_back(std::move(v));
  }
  for (const auto& [id, l] : reg.learners()) {
    LearnerView v = learner_times_;
    v.id = id.value();
    v.name = l.name;
    v.rank = l.rank;
    v.world_size = l.world_size;
    s->learners.push_back(std::move(v));
  }
  s->latency = latency_;
  s->rl = rl_;
  if (events_dirty_) {
    events_published_ =
        std::make_shared<const std::vector<EventView>>(events_.begin(), events_.end());
    events_dirty_ = false;
  }
  if (metrics_dirty_) {
    metrics_published_ = std::make_shared<const std::vector<MetricLine>>(metrics_);
    metrics_dirty_ = false;
  }
  s->events = events_published_;
  s->metrics = metrics_published_;
  s->config = config_;
  BuildFinished(s->seq);
  for (auto& [key, live] : running_) {
    Refresh(&live, s->seq);
    if (live.dirty || !live.published) {
      TreeView v = live.view;
      v.seq = s->seq;
      live.published = std::make_shared<const TreeView>(std::move(v));
      live.dirty = false;
    }
    s->trees.push_back(live.published);
  }
  s->trees.insert(s->trees.end(), finished_.begin(), finished_.end());
  last_publish_ms_ = now_ms_;
  publisher_->Publish(std::move(s));
}

}  // namespace treepo::scheduler::dashboard

#include "scheduler/service/dispatcher.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace treepo::scheduler {

Status DispatchLimits::Validate() const {
  if (max_tasks_per_worker < 1) return InvalidArgument("max_tasks_per_worker must be >= 1");
  if (max_sequences_per_worker < 1) {
    return InvalidArgument("max_sequences_per_worker must be >= 1");
  }
  if (min_free_pages < 0) return InvalidArgument("min_free_pages must be >= 0");
  if (deadline_floor_ms < 0) return InvalidArgument("task_deadline_floor_ms must be >= 0");
  if (!(deadline_multiplier > 0) || !std::isfinite(deadline_multiplier)) {
    return InvalidArgument("task_deadline_multiplier must be a finite number > 0");
  }
  if (!(assumed_tokens_per_s > 0) || !std::isfinite(assumed_tokens_per_s)) {
    return InvalidArgument("assumed_tokens_per_s must be a finite number > 0");
  }
  if (measure_min_busy_ms < 0) return InvalidArgument("measure_min_busy_ms must be >= 0");
  if (max_missed_deadlines < 1) return InvalidArgument("max_missed_deadlines must be >= 1");
  if (max_task_deadline_misses < 1) {
    return InvalidArgument("max_task_deadline_misses must be >= 1");
  }
  return OkStatus();
}

Status LoadDeadlineKeys(const Config& c, const std::string& prefix, DispatchLimits* l) {
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "task_deadline_floor_ms", &l->deadline_floor_ms));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "task_deadline_multiplier", &l->deadline_multiplier));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "assumed_tokens_per_s", &l->assumed_tokens_per_s));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "max_missed_deadlines", &l->max_missed_deadlines));
  return c.Get(prefix + "max_task_deadline_misses", &l->max_task_deadline_misses);
}

void HolderMap::Add(NodeId node, QueryId query, WorkerId worker) {
  Entry& e = nodes_[node];
  e.query = query;
  if (std::find(e.workers.begin(), e.workers.end(), worker) == e.workers.end()) {
    e.workers.push_back(worker);
  }
}

std::vector<WorkerId> HolderMap::Holders(NodeId node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? std::vector<WorkerId>{} : it->second.workers;
}

std::vector<WorkerId> HolderMap::Remove(NodeId node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return {};
  std::vector<WorkerId> out = std::move(it->second.workers);
  nodes_.erase(it);
  return out;
}

void HolderMap::ForgetWorker(WorkerId worker) {
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    auto& ws = it->second.workers;
    ws.erase(std::remove(ws.begin(), ws.end(), worker), ws.end());
    it = ws.empty() ? nodes_.erase(it) : std::next(it);
  }
}

std::map<WorkerId, std::vector<NodeId>> HolderMap::RemoveQuery(QueryId query) {
  std::map<WorkerId, std::vector<NodeId>> out;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (it->second.query != query) {
      ++it;
      continue;
    }
    for (WorkerId w : it->second.workers) out[w].push_back(it->first);
    it = nodes_.erase(it);
  }
  for (auto& [w, nodes] : out) std::sort(nodes.begin(), nodes.end());
  return out;
}

Dispatcher::Dispatcher(WorkerRegistry* registry, const DispatchLimits& limits)
    : registry_(registry), limits_(limits) {}

void Dispatcher::Enqueue(TaskSpec spec, int attempts) {
  queue_.push_back(Queued{std::move(spec), attempts, 0});
}

bool Dispatcher::HasRoom(const WorkerEntry& w, int sequences, bool new_prefix) const {
  if (!w.alive || w.in_flight_tasks >= limits_.max_tasks_per_worker) return false;
  if (w.in_flight_sequences > 0 &&
      w.in_flight_sequences + sequences > limits_.max_sequences_per_worker) {
    return false;
  }
  if (new_prefix && limits_.min_free_pages > 0 && w.load &&
      static_cast<int>(w.load->free_pages) < limits_.min_free_pages) {
    return false;
  }
  return true;
}

std::optional<Dispatcher::Placement> Dispatcher::Place(NodeId parent, int sequences,
                                                       std::optional<WorkerId> avoid) const {
  std::vector<WorkerId> avoided;
  if (avoid) avoided.push_back(*avoid);
  return PlaceAvoiding(parent, sequences, avoided);
}

std::optional<Dispatcher::Placement> Dispatcher::PlaceAvoiding(
    NodeId parent, int sequences, const std::vector<WorkerId>& avoid) const {
  auto avoided = [&](WorkerId id) {
    return std::find(avoid.begin(), avoid.end(), id) != avoid.end();
  };
  // Least loaded first: in-flight children, then the worker's own running count, then id.
  auto load_key = [](const WorkerEntry& w) {
    const uint32_t running = w.load ? w.load->running_sequences : 0;
    return std::make_tuple(w.in_flight_sequences, running, w.id);
  };
  const WorkerEntry* best = nullptr;
  if (parent.value() != 0) {
    for (WorkerId id : holders_.Holders(parent)) {
      const WorkerEntry* w = registry_->Find(id);
      if (w == nullptr || avoided(id) || !HasRoom(*w, sequences, false)) continue;
      if (best == nullptr || load_key(*w) < load_key(*best)) best = w;
    }
    if (best != nullptr) return Placement{best->id, false};
  }
  for (const auto& [id, w] : registry_->workers()) {
    if (avoided(id) || !HasRoom(w, sequences, true)) continue;
    if (best == nullptr || load_key(w) < load_key(*best)) best = &w;
  }
  if (best == nullptr) return std::nullopt;
  return Placement{best->id, true};
}

std::optional<double> Dispatcher::MeasuredTokensPerSecond(WorkerId worker) const {
  auto done = tokens_done_.find(worker);
  if (done == tokens_done_.end() || done->second <= 0) return std::nullopt;
  const double busy_ms = registry_->BusyMs(worker);
  if (busy_ms < std::max(1, limits_.measure_min_busy_ms)) return std::nullopt;
  return static_cast<double>(done->second) * 1000.0 / busy_ms;
}

double Dispatcher::TokensPerSecond(WorkerId worker) const {
  if (std::optional<double> own = MeasuredTokensPerSecond(worker)) return *own;
  // Not measured yet: the slowest live worker that is, else the assumed speed.
  std::optional<double> slowest;
  for (const auto& [id, done] : tokens_done_) {
    const WorkerEntry* w = registry_->Find(id);
    if (w == nullptr || !w->alive) continue;
    if (std::optional<double> s = MeasuredTokensPerSecond(id); s && (!slowest || *s < *slowest)) {
      slowest = s;
    }
  }
  return slowest.value_or(limits_.assumed_tokens_per_s);
}

double Dispatcher::BudgetMs(WorkerId worker, int64_t tokens, int missed_deadlines) const {
  const double expected_ms = static_cast<double>(tokens) * 1000.0 / TokensPerSecond(worker);
  double budget = std::max(static_cast<double>(limits_.deadline_floor_ms),
                           limits_.deadline_multiplier * expected_ms);
  budget *= static_cast<double>(int64_t{1} << std::min(missed_deadlines, 16));
  // A day at most: the budget stays a sane integer whatever the figures.
  return std::min(budget, 86400000.0);
}

int64_t Dispatcher::DeadlineFor(WorkerId worker, int64_t tokens, int missed_deadlines,
                                int64_t now) const {
  if (limits_.deadline_floor_ms <= 0) return 0;
  auto it = in_flight_tokens_.find(worker);
  const int64_t queued = it == in_flight_tokens_.end() ? 0 : it->second;
  const double budget = BudgetMs(worker, queued + tokens, missed_deadlines);
  return now + std::max<int64_t>(1, static_cast<int64_t>(budget));
}

void Dispatcher::TakeOff(const InFlightTask& t) {
  in_flight_tokens_[t.worker] -= t.tokens;
  WorkerEntry* w = registry_->Find(t.worker);
  if (w != nullptr && w->alive) {
    registry_->AddInFlight(w, -1, -static_cast<int>(t.spec.task.child_node_ids.size()));
  }
}

std::map<WorkerId, protocols::SegmentTaskBatch> Dispatcher::Assign() {
  std::map<WorkerId, protocols::SegmentTaskBatch> out;
  std::deque<Queued> waiting;
  const int64_t now = registry_->clock().NowMs();
  while (!queue_.empty()) {
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    const TaskId id = q.spec.task.task_id;
    std::vector<WorkerId> avoid;
    if (auto a = avoid_.find(id); a != avoid_.end()) {
      const WorkerEntry* w = registry_->Find(a->second);
      // A refusing worker is tried again once it has nothing in flight (nothing else to wait for).
      if (w != nullptr && w->alive && w->in_flight_tasks > 0) avoid.push_back(a->second);
    }
    // A worker that may still be running this task would refuse its node ids.
    if (auto l = late_.find(id); l != late_.end()) {
      for (const auto& [worker, late] : l->second) avoid.push_back(worker);
    }
    const int sequences = static_cast<int>(q.spec.task.child_node_ids.size());
    std::optional<Placement> p = PlaceAvoiding(q.spec.task.parent_node_id, sequences, avoid);
    if (!p) {
      waiting.push_back(std::move(q));
      continue;
    }
    avoid_.erase(id);
    protocols::SegmentTask task = q.spec.task;
    task.prefix_tokens.clear();
    if (p->needs_prefix) task.prefix_tokens = q.spec.parent_tokens;
    const int64_t tokens = static_cast<int64_t>(task.prefix_tokens.size()) +
                           static_cast<int64_t>(sequences) * task.max_new_tokens;
    registry_->AddInFlight(registry_->Find(p->worker), 1, sequences);
    out[p->worker].tasks.push_back(std::move(task));
    InFlightTask t{std::move(q.spec),
                   p->worker,
                   p->needs_prefix,
                   q.attempts + 1,
                   q.missed_deadlines,
                   tokens,
                   0};
    t.deadline_ms = DeadlineFor(p->worker, tokens, q.missed_deadlines, now);
    in_flight_tokens_[p->worker] += tokens;
    in_flight_[id] = std::move(t);
  }
  queue_ = std::move(waiting);
  return out;
}

std::optional<InFlightTask> Dispatcher::Complete(TaskId task, WorkerId worker) {
  std::optional<InFlightTask> done;
  if (auto it = in_flight_.find(task); it != in_flight_.end() && it->second.worker == worker) {
    done = std::move(it->second);
    in_flight_.erase(it);
    TakeOff(*done);
  } else if (auto l = late_.find(task); l != late_.end() && l->second.count(worker) > 0) {
    // Taken back from this worker, but not placed elsewhere yet: the late answer still counts.
    auto q = std::find_if(queue_.begin(), queue_.end(),
                          [&](const Queued& e) { return e.spec.task.task_id == task; });
    if (q == queue_.end()) {
      DropLate(task, worker);
      return std::nullopt;
    }
    done = InFlightTask{std::move(q->spec),
                        worker,
                        l->second[worker].sent_prefix,
                        q->attempts,
                        q->missed_deadlines,
                        0,
                        0};
    queue_.erase(q);
    l->second.erase(worker);  // other late workers still get their nodes released
    if (l->second.empty()) late_.erase(l);
  } else {
    return std::nullopt;
  }
  const InFlightTask& t = *done;
  const WorkerEntry* w = registry_->Find(worker);
  if (w != nullptr && w->alive) {
    for (NodeId child : t.spec.task.child_node_ids) holders_.Add(child, t.spec.query, worker);
    if (t.sent_prefix && t.spec.task.parent_node_id.value() != 0) {
      holders_.Add(t.spec.task.parent_node_id, t.spec.query, worker);
    }
  }
  tokens_done_[worker] += t.tokens;
  missed_in_a_row_[worker] = 0;
  last_answer_ms_[worker] = registry_->clock().NowMs();
  for (auto a = avoid_.begin(); a != avoid_.end();) {
    a = a->second == worker ? avoid_.erase(a) : std::next(a);
  }
  return done;
}

bool Dispatcher::Reject(TaskId task, WorkerId worker) {
  auto it = in_flight_.find(task);
  if (it == in_flight_.end() || it->second.worker != worker) {
    DropLate(task, worker);
    return false;
  }
  InFlightTask t = std::move(it->second);
  in_flight_.erase(it);
  TakeOff(t);
  avoid_[task] = worker;
  queue_.push_front(Queued{std::move(t.spec), t.attempts, t.missed_deadlines});
  return true;
}

int Dispatcher::Attempts(TaskId task) const {
  if (auto it = in_flight_.find(task); it != in_flight_.end()) return it->second.attempts;
  for (const Queued& q : queue_) {
    if (q.spec.task.task_id == task) return q.attempts;
  }
  return 0;
}

std::set<WorkerId> Dispatcher::SilentWorkers(int64_t now_ms) const {
  std::set<WorkerId> out;
  if (limits_.deadline_floor_ms <= 0) return out;
  std::map<WorkerId, std::pair<int64_t, int>> largest;  // tokens, misses of its largest task
  for (const auto& [id, t] : in_flight_) {
    auto& l = largest[t.worker];
    l = std::max(l, std::make_pair(t.tokens, t.missed_deadlines));
  }
  for (const auto& [worker, l] : largest) {
    const WorkerEntry* w = registry_->Find(worker);
    if (w == nullptr || !w->alive || w->busy_since_ms < 0) continue;
    int64_t quiet_since = w->busy_since_ms;
    if (auto a = last_answer_ms_.find(worker); a != last_answer_ms_.end()) {
      quiet_since = std::max(quiet_since, a->second);
    }
    if (static_cast<double>(now_ms - quiet_since) >= BudgetMs(worker, l.first, l.second)) {
      out.insert(worker);
    }
  }
  return out;
}

Expiry Dispatcher::ExpireLate(int64_t now_ms) {
  Expiry out;
  std::vector<Queued> requeue;
  const std::set<WorkerId> silent = SilentWorkers(now_ms);
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    InFlightTask& t = it->second;
    const bool late = t.deadline_ms > 0 && now_ms >= t.deadline_ms;
    if (!late && silent.count(t.worker) == 0) {
      ++it;
      continue;
    }
    TakeOff(t);
    out.late.emplace_back(it->first, t.worker);
    late_[it->first][t.worker] =
        Late{t.sent_prefix, t.spec.task.parent_node_id, t.spec.task.child_node_ids};
    const int misses = t.missed_deadlines + 1;
    if (misses >= limits_.max_task_deadline_misses && !out.hopeless) out.hopeless = it->first;
    if (++missed_in_a_row_[t.worker] >= limits_.max_missed_deadlines &&
        std::find(out.fence.begin(), out.fence.end(), t.worker) == out.fence.end()) {
      out.fence.push_back(t.worker);
    }
    requeue.push_back(Queued{std::move(t.spec), t.attempts, misses});
    it = in_flight_.erase(it);
  }
  // in_flight_ is ordered by task id, so the requeued tasks keep that order at the front.
  for (auto it = requeue.rbegin(); it != requeue.rend(); ++it) queue_.push_front(std::move(*it));
  return out;
}

bool Dispatcher::DropLate(TaskId task, WorkerId worker) {
  auto l = late_.find(task);
  if (l == late_.end()) return false;
  auto w = l->second.find(worker);
  if (w == l->second.end()) return false;
  const Late late = std::move(w->second);
  l->second.erase(w);
  if (l->second.empty()) late_.erase(l);
  std::vector<NodeId> nodes = late.children;
  if (late.sent_prefix && late.parent.value() != 0) {
    const std::vector<WorkerId> holders = holders_.Holders(late.parent);
    if (std::find(holders.begin(), holders.end(), worker) == holders.end()) {
      nodes.push_back(late.parent);
    }
  }
  std::vector<NodeId>& out = releases_[worker];
  out.insert(out.end(), nodes.begin(), nodes.end());
  return true;
}

std::map<WorkerId, std::vector<NodeId>> Dispatcher::TakeReleases() {
  std::map<WorkerId, std::vector<NodeId>> out;
  out.swap(releases_);
  return out;
}

int Dispatcher::WorkerDied(WorkerId worker) {
  holders_.ForgetWorker(worker);
  std::vector<Queued> lost;
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second.worker != worker) {
      ++it;
      continue;
    }
    lost.push_back(
        Queued{std::move(it->second.spec), it->second.attempts, it->second.missed_deadlines});
    it = in_flight_.erase(it);
  }
  // in_flight_ is ordered by task id, so the requeued tasks keep that order at the front.
  for (auto it = lost.rbegin(); it != lost.rend(); ++it) queue_.push_front(std::move(*it));
  for (auto a = avoid_.begin(); a != avoid_.end();) {
    a = a->second == worker ? avoid_.erase(a) : std::next(a);
  }
  for (auto l = late_.begin(); l != late_.end();) {
    l->second.erase(worker);
    l = l->second.empty() ? late_.erase(l) : std::next(l);
  }
  in_flight_tokens_.erase(worker);
  missed_in_a_row_.erase(worker);
  last_answer_ms_.erase(worker);
  releases_.erase(worker);
  return static_cast<int>(lost.size());
}

}  // namespace treepo::scheduler

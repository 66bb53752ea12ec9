#include "scheduler/service/dispatcher.h"

#include <algorithm>
#include <tuple>

namespace treepo::scheduler {

Status DispatchLimits::Validate() const {
  if (max_tasks_per_worker < 1) return InvalidArgument("max_tasks_per_worker must be >= 1");
  if (max_sequences_per_worker < 1) {
    return InvalidArgument("max_sequences_per_worker must be >= 1");
  }
  if (min_free_pages < 0) return InvalidArgument("min_free_pages must be >= 0");
  return OkStatus();
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
  queue_.emplace_back(std::move(spec), attempts);
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
  // Least loaded first: in-flight children, then the worker's own running count, then id.
  auto load_key = [](const WorkerEntry& w) {
    const uint32_t running = w.load ? w.load->running_sequences : 0;
    return std::make_tuple(w.in_flight_sequences, running, w.id);
  };
  const WorkerEntry* best = nullptr;
  if (parent.value() != 0) {
    for (WorkerId id : holders_.Holders(parent)) {
      const WorkerEntry* w = registry_->Find(id);
      if (w == nullptr || (avoid && *avoid == id) || !HasRoom(*w, sequences, false)) continue;
      if (best == nullptr || load_key(*w) < load_key(*best)) best = w;
    }
    if (best != nullptr) return Placement{best->id, false};
  }
  for (const auto& [id, w] : registry_->workers()) {
    if ((avoid && *avoid == id) || !HasRoom(w, sequences, true)) continue;
    if (best == nullptr || load_key(w) < load_key(*best)) best = &w;
  }
  if (best == nullptr) return std::nullopt;
  return Placement{best->id, true};
}

std::map<WorkerId, protocols::SegmentTaskBatch> Dispatcher::Assign() {
  std::map<WorkerId, protocols::SegmentTaskBatch> out;
  std::deque<std::pair<TaskSpec, int>> waiting;
  while (!queue_.empty()) {
    auto [spec, attempts] = std::move(queue_.front());
    queue_.pop_front();
    const TaskId id = spec.task.task_id;
    std::optional<WorkerId> avoid;
    if (auto a = avoid_.find(id); a != avoid_.end()) {
      const WorkerEntry* w = registry_->Find(a->second);
      // A refusing worker is tried again once it has nothing in flight (nothing else to wait for).
      if (w != nullptr && w->alive && w->in_flight_tasks > 0) avoid = a->second;
    }
    const int sequences = static_cast<int>(spec.task.child_node_ids.size());
    std::optional<Placement> p = Place(spec.task.parent_node_id, sequences, avoid);
    if (!p) {
      waiting.emplace_back(std::move(spec), attempts);
      continue;
    }
    avoid_.erase(id);
    protocols::SegmentTask task = spec.task;
    task.prefix_tokens.clear();
    if (p->needs_prefix) task.prefix_tokens = spec.parent_tokens;
    registry_->AddInFlight(registry_->Find(p->worker), 1, sequences);
    out[p->worker].tasks.push_back(std::move(task));
    in_flight_[id] = InFlightTask{std::move(spec), p->worker, p->needs_prefix, attempts + 1};
  }
  queue_ = std::move(waiting);
  return out;
}

std::optional<InFlightTask> Dispatcher::Complete(TaskId task, WorkerId worker) {
  auto it = in_flight_.find(task);
  if (it == in_flight_.end() || it->second.worker != worker) return std::nullopt;
  InFlightTask t = std::move(it->second);
  in_flight_.erase(it);
  WorkerEntry* w = registry_->Find(worker);
  if (w != nullptr && w->alive) {
    registry_->AddInFlight(w, -1, -static_cast<int>(t.spec.task.child_node_ids.size()));
    for (NodeId child : t.spec.task.child_node_ids) holders_.Add(child, t.spec.query, worker);
    if (t.sent_prefix && t.spec.task.parent_node_id.value() != 0) {
      holders_.Add(t.spec.task.parent_node_id, t.spec.query, worker);
    }
  }
  for (auto a = avoid_.begin(); a != avoid_.end();) {
    a = a->second == worker ? avoid_.erase(a) : std::next(a);
  }
  return t;
}

bool Dispatcher::Reject(TaskId task, WorkerId worker) {
  auto it = in_flight_.find(task);
  if (it == in_flight_.end() || it->second.worker != worker) return false;
  InFlightTask t = std::move(it->second);
  in_flight_.erase(it);
  WorkerEntry* w = registry_->Find(worker);
  if (w != nullptr && w->alive) {
    registry_->AddInFlight(w, -1, -static_cast<int>(t.spec.task.child_node_ids.size()));
  }
  avoid_[task] = worker;
  queue_.emplace_front(std::move(t.spec), t.attempts);
  return true;
}

int Dispatcher::Attempts(TaskId task) const {
  if (auto it = in_flight_.find(task); it != in_flight_.end()) return it->second.attempts;
  for (const auto& [spec, attempts] : queue_) {
    if (spec.task.task_id == task) return attempts;
  }
  return 0;
}

int Dispatcher::WorkerDied(WorkerId worker) {
  holders_.ForgetWorker(worker);
  std::vector<std::pair<TaskSpec, int>> lost;
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second.worker != worker) {
      ++it;
      continue;
    }
    lost.emplace_back(std::move(it->second.spec), it->second.attempts);
    it = in_flight_.erase(it);
  }
  // in_flight_ is ordered by task id, so the requeued tasks keep that order at the front.
  for (auto it = lost.rbegin(); it != lost.rend(); ++it) queue_.push_front(std::move(*it));
  for (auto a = avoid_.begin(); a != avoid_.end();) {
    a = a->second == worker ? avoid_.erase(a) : std::next(a);
  }
  return static_cast<int>(lost.size());
}

}  // namespace treepo::scheduler

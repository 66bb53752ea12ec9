// Dispatch: which worker runs each segment task, with prefix affinity.
//
// A task whose parent's KV some live worker holds goes to that worker (no prefix sent) unless
// it is at capacity; otherwise to the least-loaded live worker with room, and then the task
// carries the parent's whole token path (prompt + path tokens, the scheduler's copy) for the
// worker to prefill. Tasks that fit nowhere wait in FIFO order. Assign() groups everything
// placed in one loop turn into one SegmentTaskBatch per worker.
//
// The dispatcher also owns the node -> holder map (which workers hold which node's KV) and the
// in-flight table that fences results: a result counts only if its task is in flight on the
// worker that sent it.
//
// Thread-safety: none; owned by the scheduler's loop thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "protocols/messages.h"
#include "scheduler/service/worker_registry.h"

namespace treepo::scheduler {

struct DispatchLimits {
  int max_tasks_per_worker = 64;       // in-flight tasks per worker
  int max_sequences_per_worker = 256;  // in-flight children per worker
  // A worker whose last heartbeat reports fewer free KV pages than this takes no new task
  // that needs pages it does not already hold (new prefixes); 0 = ignore page figures.
  int min_free_pages = 0;

  Status Validate() const;
};

// A segment task as the rollout wants it run.
struct TaskSpec {
  protocols::SegmentTask task;  // prefix_tokens left empty; the dispatcher fills it when needed
  QueryId query;
  // The parent's whole token path (prompt + response so far); for a root task the prompt.
  std::vector<int32_t> parent_tokens;
};

// Node -> workers holding its KV.
class HolderMap {
 public:
  void Add(NodeId node, QueryId query, WorkerId worker);
  // Workers holding `node`, live or not (empty when none).
  std::vector<WorkerId> Holders(NodeId node) const;
  // Forgets `node`; returns the workers that held it.
  std::vector<WorkerId> Remove(NodeId node);
  // Forgets everything `worker` held.
  void ForgetWorker(WorkerId worker);
  // Forgets every node of `query`; returns them grouped by holder.
  std::map<WorkerId, std::vector<NodeId>> RemoveQuery(QueryId query);
  size_t size() const { return nodes_.size(); }

 private:
  struct Entry {
    QueryId query;
    std::vector<WorkerId> workers;
  };
  std::unordered_map<NodeId, Entry> nodes_;
};

struct InFlightTask {
  TaskSpec spec;
  WorkerId worker;
  bool sent_prefix = false;
  int attempts = 0;  // dispatches so far
};

class Dispatcher {
 public:
  // `registry` outlives the dispatcher.
  Dispatcher(WorkerRegistry* registry, const DispatchLimits& limits);

  void Enqueue(TaskSpec spec, int attempts = 0);
  // Places queued tasks in FIFO order; a task that fits on no live worker stays queued (and so
  // does every task behind it that would need the same; others still go). Marks them in
  // flight and returns the batch for each worker.
  std::map<WorkerId, protocols::SegmentTaskBatch> Assign();

  // Placement alone (no state change): the holder of `parent` if live with room, else the
  // least-loaded live worker with room other than `avoid`; nullopt if none has room.
  struct Placement {
    WorkerId worker;
    bool needs_prefix = false;
  };
  std::optional<Placement> Place(NodeId parent, int sequences,
                                 std::optional<WorkerId> avoid = std::nullopt) const;

  // A result for `task` from `worker`: the in-flight entry, removed, with the holder map
  // updated (children and, when prefilled, the parent now live on `worker`). nullopt for a
  // task not in flight on that worker (late, duplicated or fenced): drop the result.
  std::optional<InFlightTask> Complete(TaskId task, WorkerId worker);
  // `worker` refused `task`: it goes back to the queue, to be placed on another worker when
  // one has room. False when the task was not in flight there.
  bool Reject(TaskId task, WorkerId worker);
  // `worker` died: its nodes are forgotten and its in-flight tasks requeued (first in line).
  // Returns how many tasks were requeued.
  int WorkerDied(WorkerId worker);

  // Dispatches so far of a queued or in-flight task (0 if unknown).
  int Attempts(TaskId task) const;

  HolderMap& holders() { return holders_; }
  size_t queued() const { return queue_.size(); }
  size_t in_flight() const { return in_flight_.size(); }
  const DispatchLimits& limits() const { return limits_; }

 private:
  bool HasRoom(const WorkerEntry& w, int sequences, bool new_prefix) const;

  WorkerRegistry* registry_;
  DispatchLimits limits_;
  HolderMap holders_;
  std::deque<std::pair<TaskSpec, int>> queue_;  // spec, attempts so far
  std::map<TaskId, InFlightTask> in_flight_;
  std::map<TaskId, WorkerId> avoid_;  // the worker that last refused a requeued task
};

}  // namespace treepo::scheduler

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
// Deadlines: every task placed on a worker gets a deadline from its size and the worker's
// measured speed (DispatchLimits). ExpireLate() takes back the tasks past their deadline and
// requeues them (first in line) for another worker; the late worker is not given that task
// again while it may still be running it. If its late result comes while the task still
// waits in the queue, the result is taken (Complete); once the task runs elsewhere the late
// result is dropped and DropLate() names the nodes the late worker should free. A worker that
// misses max_missed_deadlines deadlines in a row is to be fenced by the caller.
//
// Thread-safety: none; owned by the scheduler's loop thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/config.h"
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

  // Task deadlines. A task placed on worker W must be answered within
  //   max(deadline_floor_ms, deadline_multiplier * T / S) * 2^(deadlines the task missed)
  // where T is the tokens in flight on W with this task (prefix tokens to prefill plus
  // children x max_new_tokens, for every task in flight there) and S is W's measured speed
  // (tokens of its answered tasks over its busy time, once busy for measure_min_busy_ms);
  // before W has one, the slowest measured live worker's, and before any, assumed_tokens_per_s.
  // A worker with tasks in flight that answers none of them for the budget of its largest
  // task alone (T = that task's tokens) is stalled: all its tasks are taken back then, even
  // those whose own deadline, counting the tokens queued ahead of them, is later.
  int deadline_floor_ms = 30000;       // 0 = tasks have no deadline
  double deadline_multiplier = 4.0;    // slack over the expected time (> 0)
  double assumed_tokens_per_s = 20.0;  // a worker's speed until measured (> 0): conservative
  int measure_min_busy_ms = 1000;      // busy time before a worker's own speed is used
  int max_missed_deadlines = 3;        // deadlines missed in a row that fence a worker
  int max_task_deadline_misses = 6;    // deadlines one task may miss before the run fails

  Status Validate() const;
};

// Reads the deadline keys of DispatchLimits, each under `prefix`: task_deadline_floor_ms,
// task_deadline_multiplier, assumed_tokens_per_s, max_missed_deadlines,
// max_task_deadline_misses. Absent keys keep their value.
Status LoadDeadlineKeys(const Config& config, const std::string& prefix, DispatchLimits* limits);

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
  int attempts = 0;          // dispatches so far
  int missed_deadlines = 0;  // deadlines this task missed before this dispatch
  int64_t tokens = 0;        // prefix tokens to prefill + children x max_new_tokens
  int64_t deadline_ms = 0;   // on the registry's clock; 0 = none
};

// What ExpireLate() took back.
struct Expiry {
  std::vector<std::pair<TaskId, WorkerId>> late;  // tasks past their deadline, and where
  std::vector<WorkerId> fence;  // workers that reached max_missed_deadlines in a row
  // A task that reached max_task_deadline_misses (the run cannot finish it), if any.
  std::optional<TaskId> hopeless;
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
  // updated (children and, when prefilled, the parent now live on `worker`). A late result
  // counts while its task still waits in the queue. nullopt for a task not in flight on that
  // worker (late and re-dispatched, duplicated or fenced): drop the result.
  std::optional<InFlightTask> Complete(TaskId task, WorkerId worker);
  // `worker` refused `task`: it goes back to the queue, to be placed on another worker when
  // one has room. False when the task was not in flight there.
  bool Reject(TaskId task, WorkerId worker);
  // `worker` died: its nodes are forgotten and its in-flight tasks requeued (first in line).
  // Returns how many tasks were requeued.
  int WorkerDied(WorkerId worker);

  // Dispatches so far of a queued or in-flight task (0 if unknown).
  int Attempts(TaskId task) const;

  // Takes back every in-flight task whose deadline is at or before `now_ms`, and every task of
  // a worker silent for too long (DispatchLimits), and requeues them.
  Expiry ExpireLate(int64_t now_ms);
  // Nodes that late workers hold for nothing, by worker, since the last call: a late result
  // that Complete() dropped (or a late refusal) leaves the task's children, and its parent
  // when it was prefilled there, on the late worker. Send them ReleaseNodes.
  std::map<WorkerId, std::vector<NodeId>> TakeReleases();
  // Tokens per second used for `worker`'s deadlines: its measured speed; before it has one,
  // the slowest measured speed among the live workers; before any, the assumed speed.
  double TokensPerSecond(WorkerId worker) const;

  HolderMap& holders() { return holders_; }
  size_t queued() const { return queue_.size(); }
  size_t in_flight() const { return in_flight_.size(); }
  const DispatchLimits& limits() const { return limits_; }

 private:
  struct Queued {
    TaskSpec spec;
    int attempts = 0;          // dispatches so far
    int missed_deadlines = 0;  // deadlines missed so far
  };
  struct Late {
    bool sent_prefix = false;  // the late worker was sent the parent's prefix
    NodeId parent;
    std::vector<NodeId> children;
  };

  bool HasRoom(const WorkerEntry& w, int sequences, bool new_prefix) const;
  // Tokens of `worker`'s answered tasks over its busy time, once busy measure_min_busy_ms.
  std::optional<double> MeasuredTokensPerSecond(WorkerId worker) const;
  std::optional<Placement> PlaceAvoiding(NodeId parent, int sequences,
                                         const std::vector<WorkerId>& avoid) const;
  // The time `tokens` may take on `worker` (the formula of DispatchLimits), in ms.
  double BudgetMs(WorkerId worker, int64_t tokens, int missed_deadlines) const;
  // Deadline of a task of `tokens` placed now on `worker` (0 when deadlines are off).
  int64_t DeadlineFor(WorkerId worker, int64_t tokens, int missed_deadlines, int64_t now) const;
  // Workers with tasks in flight that answered nothing for the budget of their largest
  // in-flight task alone (since they became busy or last answered): stalled, whatever the
  // deadlines of their queued-up tasks say.
  std::set<WorkerId> SilentWorkers(int64_t now_ms) const;
  // Takes `task` off `worker`'s in-flight counts.
  void TakeOff(const InFlightTask& task);
  // `worker` answered or refused `task` after it was taken back from it: forgets that and
  // queues the nodes it holds for nothing in releases_. False when the task was not late there.
  bool DropLate(TaskId task, WorkerId worker);

  WorkerRegistry* registry_;
  DispatchLimits limits_;
  HolderMap holders_;
  std::deque<Queued> queue_;
  std::map<TaskId, InFlightTask> in_flight_;
  std::map<TaskId, WorkerId> avoid_;                  // the worker that last refused a task
  std::map<TaskId, std::map<WorkerId, Late>> late_;   // tasks taken back, by late worker
  std::map<WorkerId, int64_t> in_flight_tokens_;      // sum of InFlightTask::tokens
  std::map<WorkerId, int64_t> tokens_done_;           // tokens of answered tasks
  std::map<WorkerId, int> missed_in_a_row_;           // deadlines missed since the last answer
  std::map<WorkerId, int64_t> last_answer_ms_;        // when it last answered a task
  std::map<WorkerId, std::vector<NodeId>> releases_;  // see TakeReleases()
};

}  // namespace treepo::scheduler

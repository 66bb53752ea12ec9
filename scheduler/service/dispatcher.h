// Dispatch: which worker runs each segment task. The scheduler owns the KV map
// (docs/placement.md).
//
// Pages. Every worker reports its KV pool (total and free pages, and how many task batches it
// had received) in heartbeats and result batches. A worker's free pages are estimated as the
// last report minus the pages of the batches sent since (each task's need: its parent's pages
// when it must be prefilled, and per child a copy of the partial page plus room for L tokens)
// minus pages reserved for KV migrating in. A task is placed only where its need fits;
// otherwise it waits in the queue (counted once in tasks_waited), it is never bounced between
// full workers. When a task cannot be placed, nothing is in flight that would free pages and
// no transfer is under way, the worker holding its parent evicts idle nodes (least recently
// useful first: nodes no queued task forks, then those of the newest queries); a task whose
// parent is gone carries its prefix again (tokens_recomputed).
//
// Locality and the cost model. A task whose parent is being computed or migrated waits for it.
// A task whose parent some live worker holds goes there, unless another worker would finish
// it sooner by enough (move_min_gain_ms and move_min_gain_fraction of the holder's wait):
//   wait       holder's in-flight tokens / its measured tokens per second
//   recompute  target's wait + the parent's positions / its measured prefill speed
//   migrate    target's wait + the parent's KV bytes / the measured link speed + latency
// The cheapest wins (ties keep locality); `policy` can restrict the choice ("wait",
// "recompute", "migrate"). A migration is ordered with KvMigrate to both workers; the holder
// map gains the destination only when it acknowledges (KvMigrated), and the source copy is
// released then. A failed or timed-out transfer leaves the task to be placed again. Tasks with
// no parent held anywhere go to the worker that would finish them first (of equals, the one
// that has done the least), with the parent's whole token path (prompt + path tokens) to
// prefill. A worker not measured yet is expected to be as fast as the fastest measured one,
// so that a worker joining a run gets work and is measured (PlacementTokensPerSecond).
// Assign() groups everything placed in one loop turn into one SegmentTaskBatch per worker.
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
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/config.h"
#include "common/ids.h"
#include "protocols/messages.h"
#include "scheduler/service/worker_registry.h"

namespace treepo::scheduler {

struct DispatchLimits {
  // Placement (see the file comment). policy: "cost" (wait, recompute or migrate, whichever
  // is cheapest), "wait" (always wait for the holder), "recompute" (wait or recompute, never
  // migrate), "migrate" (wait or migrate, never recompute a held prefix).
  std::string policy = "cost";
  int move_min_gain_ms = 100;             // a move must save at least this much ...
  double move_min_gain_fraction = 0.5;    // ... and this fraction of the holder's wait
  double assumed_link_bytes_per_s = 2e8;  // KV transfer speed until measured (> 0)
  double link_latency_ms = 2.0;           // per transfer
  double assumed_prefill_factor = 8.0;    // prefill speed = this x decode speed until measured
  int transfer_timeout_ms = 10000;        // a migration not acknowledged by then is abandoned
  // Testing: migrate every k-th task whose parent is held to another live worker, whatever
  // the cost (0 = off).
  int debug_migrate_every = 0;

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

// Reads the placement keys of DispatchLimits, each under `prefix`: placement_policy,
// move_min_gain_ms, move_min_gain_fraction, assumed_link_mb_per_s, link_latency_ms,
// assumed_prefill_factor, transfer_timeout_ms, debug_migrate_every. Absent keys keep their value.
Status LoadPlacementKeys(const Config& config, const std::string& prefix, DispatchLimits* limits);

// Reads the deadline keys of DispatchLimits, each under `prefix`: task_deadline_floor_ms,
// task_deadline_multiplier, assumed_tokens_per_s, max_missed_deadlines,
// max_task_deadline_misses. Absent keys keep their value.
Status LoadDeadlineKeys(const Config& config, const std::string& prefix, DispatchLimits* limits);

// Node -> workers holding its KV.
class HolderMap {
 public:
  // `positions`: the node's KV length (for page and byte estimates).
  void Add(NodeId node, QueryId query, WorkerId worker, int64_t positions = 0);
  // The KV length given to Add (0 if unknown).
  int64_t Positions(NodeId node) const;
  // Query of a held node (QueryId(0) if not held).
  QueryId QueryOf(NodeId node) const;
  // Forgets that `worker` holds `node` (others keep it).
  void RemoveHolder(NodeId node, WorkerId worker);
  // Nodes `worker` holds, oldest first.
  std::vector<NodeId> HeldBy(WorkerId worker) const;
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
    int64_t positions = 0;
    uint64_t order = 0;  // when first added
  };
  std::unordered_map<NodeId, Entry> nodes_;
  // Nodes added under each query (entries outlive Remove; RemoveQuery checks nodes_), so that
  // a query's end does not scan every held node.
  std::unordered_map<QueryId, std::vector<NodeId>> by_query_;
  uint64_t next_order_ = 0;
};

// The scheduler's one segment-task type is protocols::SegmentTask. The tasks the dispatcher
// takes (Enqueue) carry the parent's whole token path (prompt + response so far) in
// prefix_tokens; the copy sent to a worker keeps it only when that worker must prefill the
// parent. Node ids are the run's wire ids, (query << 32) | k, k = 0 for the prompt node.
struct InFlightTask {
  protocols::SegmentTask task;  // as enqueued (prefix_tokens: the parent's whole path)
  WorkerId worker;
  bool sent_prefix = false;
  int attempts = 0;          // dispatches so far
  int missed_deadlines = 0;  // deadlines this task missed before this dispatch
  int64_t tokens = 0;        // prefix tokens to prefill + children x max_new_tokens
  int64_t deadline_ms = 0;   // on the registry's clock; 0 = none
  // A part of a task the dispatcher split (its children did not fit any worker at once): the
  // id the task was enqueued with. 0: the task is whole.
  TaskId origin;
};

// What ExpireLate() took back.
struct Expiry {
  std::vector<std::pair<TaskId, WorkerId>> late;  // tasks past their deadline, and where
  std::vector<WorkerId> fence;  // workers that reached max_missed_deadlines in a row
  // A task that reached max_task_deadline_misses (the run cannot finish it), if any.
  std::optional<TaskId> hopeless;
};

// A KV migration ordered by the dispatcher (the service sends KvMigrate to both sides).
struct MigrationOrder {
  uint64_t transfer_id = 0;
  std::vector<NodeId> nodes;
  WorkerId from, to;
};

// Placement figures since creation (rollout summaries take differences).
struct PlacementCounters {
  int64_t tasks_waited = 0;   // tasks that waited at least once for pages or their parent
  int64_t kv_migrations = 0;  // transfers acknowledged
  int64_t kv_bytes_migrated = 0;
  int64_t kv_migrations_failed = 0;
  int64_t kv_evictions = 0;       // nodes evicted for lack of pages
  int64_t tokens_recomputed = 0;  // prefix positions prefilled again for a node computed before
  int64_t decided_wait = 0;       // cost-model decisions, by choice
  int64_t decided_recompute = 0;
  int64_t decided_migrate = 0;
};

class Dispatcher {
 public:
  // `registry` outlives the dispatcher.
  Dispatcher(WorkerRegistry* registry, const DispatchLimits& limits);

  // `task.prefix_tokens`: the parent's whole token path (see InFlightTask).
  void Enqueue(protocols::SegmentTask task, int attempts = 0);
  // Where split tasks get their new ids (the service's task ids). Unset: tasks are not split.
  void set_task_ids(std::function<TaskId()> next) { next_task_id_ = std::move(next); }
  // Places queued tasks in FIFO order; a task that fits on no live worker stays queued (and so
  // does every task behind it that would need the same; others still go). Marks them in
  // flight and returns the batch for each worker.
  std::map<WorkerId, protocols::SegmentTaskBatch> Assign();

  // Migrations ordered since the last call (send KvMigrate to both sides).
  std::vector<MigrationOrder> TakeMigrations();
  // A transfer ended (KvMigrated from either side, or the send failed). ok: the destination
  // holds the nodes now; the source's copies are to be released (TakeReleases).
  void MigrationDone(uint64_t transfer_id, bool ok, uint64_t bytes);
  // A page report from `worker` (heartbeat or result batch): total pages (0: not reported),
  // free pages, and the task batches it had received. Assign() counts every batch it returns
  // as sent.
  void OnPageReport(WorkerId worker, uint32_t total, uint32_t free, uint64_t batches_seen);
  // Estimated free pages of `worker` now (nullopt: it does not report pages).
  std::optional<int64_t> FreePages(WorkerId worker) const;
  // Peak pages in use each worker reported.
  const std::map<WorkerId, int64_t>& peak_pages() const { return peak_pages_; }
  const PlacementCounters& placement() const { return placement_; }
  // Records a result's prefill speed for the cost model.
  void RecordPrefill(WorkerId worker, int64_t tokens, double ms);
  // A query ended: forget which of its nodes were ever computed.
  void ForgetQuery(QueryId query);
  // True when the workers' free pages (estimated), beyond what the queued tasks need, can take
  // a new query: its prompt of `positions` KV positions plus one segment of `segment_tokens`
  // for each of `paths` live paths. Workers that report no pages always can.
  bool CanAdmit(int64_t positions, int paths, int64_t segment_tokens) const;
  // Set when a queued task needs more pages than any live worker has in all: the rollout
  // cannot finish it (the service makes this fatal).
  const std::optional<std::string>& hopeless() const { return hopeless_; }
  // Pages a task of `children` children of L = max_new_tokens continuing a parent of
  // `positions` KV positions needs on a worker with `page_size`, with or without the parent.
  static int64_t TaskPages(int64_t positions, int children, int64_t max_new_tokens, int page_size,
                           bool with_parent);

  // A result for `task` from `worker`: the in-flight entry, removed, with the holder map
  // updated (children and, when prefilled, the parent now live on `worker`). A late result
  // counts while its task still waits in the queue. nullopt for a task not in flight on that
  // worker (late and re-dispatched, duplicated or fenced): drop the result.
  // `result` (may be null) gives the children's lengths and the prefill speed.
  std::optional<InFlightTask> Complete(TaskId task, WorkerId worker,
                                       const protocols::SegmentResult* result = nullptr);
  // `worker` refused `task`: it goes back to the queue, to be placed on another worker when
  // one has room. False when the task was not in flight there.
  bool Reject(TaskId task, WorkerId worker);
  // `worker` died: its nodes are forgotten and its in-flight tasks requeued (first in line).
  // Returns how many tasks were requeued.
  int WorkerDied(WorkerId worker);
  // Queued tasks whose parent's KV only `worker` holds: where it dies, they are placed afresh
  // (with the prefix to recompute) instead of waiting for it.
  int QueuedOnlyOn(WorkerId worker) const;

  // True while a draining `worker` is still needed: a KV transfer from or to it is under way,
  // or a queued task continues a node that it alone of the live workers holds (the task will
  // migrate that KV or recompute it elsewhere). Its in-flight tasks are counted by the registry.
  bool NeededForDrain(WorkerId worker) const;

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
  const HolderMap& holders() const { return holders_; }
  size_t queued() const { return queue_.size(); }
  size_t in_flight() const { return in_flight_.size(); }
  const DispatchLimits& limits() const { return limits_; }

 private:
  struct Queued {
    protocols::SegmentTask task;
    int attempts = 0;          // dispatches so far
    int missed_deadlines = 0;  // deadlines missed so far
    bool waited = false;       // counted in tasks_waited
    TaskId origin;             // see InFlightTask::origin
  };
  // Where one task goes, and how.
  struct Placement {
    WorkerId worker;
    bool needs_prefix = false;
    std::optional<WorkerId> migrate_from;  // order a migration of the parent first
  };
  struct Transfer {
    std::vector<NodeId> nodes;
    WorkerId from, to;
    int pages = 0;  // reserved on `to`
    int64_t started_ms = 0;
  };
  struct PageBook {
    int64_t total = 0;  // 0: the worker reports no pages
    int64_t reported_free = 0;
    uint64_t batches_seen = 0;
    uint64_t batches_sent = 0;
    int64_t pending = 0;  // pages of tasks placed this turn, not yet in a sent batch
    std::deque<std::pair<uint64_t, int64_t>> unseen;  // (batch number, pages) sent since
    int64_t unseen_pages = 0;                         // their sum
    bool no_reports = false;  // a peer whose reports carry no pages: no page accounting
    int64_t reserved_imports = 0;
    int reports_to_wait = 0;  // released nodes for room: wait for this many reports
  };
  struct Late {
    bool sent_prefix = false;  // the late worker was sent the parent's prefix
    NodeId parent;
    std::vector<NodeId> children;
  };

  // `worker`'s page book, made from its registration on first use.
  PageBook& Book(WorkerId worker);
  // Pages `task` needs on `worker`.
  int64_t NeedOn(const protocols::SegmentTask& task, WorkerId worker, bool with_parent) const;
  bool Fits(WorkerId worker, int64_t pages) const;
  // Expected ms until `worker` has done its in-flight work (at PlacementTokensPerSecond).
  double WaitMs(WorkerId worker) const;
  // The speeds the cost model expects of `worker` (decode, prefill): its measured ones; before
  // it has them, the fastest measured among the live workers; before any, the assumed ones.
  // Optimistic where deadlines (TokensPerSecond) are cautious: a worker is measured only once
  // it runs tasks, so one that joins a run is estimated like the best of the others and tried
  // at once, not starved for as long as the others' measurements look better than a guess.
  double PlacementTokensPerSecond(WorkerId worker) const;
  double PrefillTokensPerSecond(WorkerId worker) const;
  // Prefill tokens per second of `worker` once measured (256 prefilled tokens), else its
  // measured decode speed x assumed_prefill_factor; nullopt before either.
  std::optional<double> MeasuredPrefillTokensPerSecond(WorkerId worker) const;
  // Tokens of `worker`'s answered tasks so far.
  int64_t TokensDone(WorkerId worker) const;
  double LinkBytesPerSecond() const;
  int64_t KvBytes(NodeId node, WorkerId holder) const;
  // Chooses where a queued task goes (nullopt: it waits).
  std::optional<Placement> PlaceTask(const Queued& q, const std::vector<WorkerId>& avoid);
  // Splits `q` in two (children halved) while its children cannot fit any live worker's whole
  // pool at once; the parts go back to the front of the queue. True when it split.
  bool SplitIfTooLarge(Queued* q);
  // Frees room on a worker whose queued tasks can never fit while nothing else moves.
  void MaybeEvict(const std::deque<Queued>& waiting);
  void ExpireTransfers(int64_t now_ms);
  // A task that was to prefill its parent is off `t.worker`: the parent is not coming there.
  void ForgetArrival(const InFlightTask& t);
  void LiveWorkersInto(std::vector<const WorkerEntry*>* out) const;
  // Tokens of `worker`'s answered tasks over its busy time, once busy measure_min_busy_ms.
  std::optional<double> MeasuredTokensPerSecond(WorkerId worker) const;
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
  // Placement state.
  std::map<WorkerId, PageBook> pages_;
  std::map<WorkerId, int64_t> peak_pages_;
  std::map<WorkerId, std::pair<int64_t, double>> prefill_;  // tokens, ms
  std::pair<int64_t, double> link_{0, 0.0};                 // bytes, ms of acknowledged moves
  std::unordered_map<NodeId, WorkerId> arriving_;           // parents being prefilled or migrated
  // Nodes ever held, by query (a task that prefills one again recomputes it).
  std::unordered_map<uint64_t, std::unordered_set<NodeId>> computed_;
  std::map<uint64_t, Transfer> transfers_;
  std::vector<MigrationOrder> migrations_;
  uint64_t next_transfer_ = 1;
  uint64_t placed_held_ = 0;             // tasks placed whose parent was held (debug_migrate_every)
  std::unordered_set<uint64_t> forced_;  // tasks whose parent was moved by debug_migrate_every
  PlacementCounters placement_;
  std::optional<std::string> hopeless_;
  std::function<TaskId()> next_task_id_;
};

}  // namespace treepo::scheduler

// Drives many queries' rollouts at once over a SchedulerService, with no global step
// barrier: up to max_concurrent_queries are open, and each advances as soon as its own
// segment results arrive (in any order). Finished queries are released on the workers,
// scored, and their trees collected in query order.
//
// Thread-safety: none; runs on the service's loop thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "common/status.h"
#include "common/tree/tree_record.h"
#include "protocols/messages.h"
#include "scheduler/service/dispatcher.h"
#include "scheduler/service/scheduler_service.h"
#include "scheduler/tree/query_tree.h"

namespace treepo::scheduler {

// One query's rollout as the runner sees it (an adapter around the query's TreeSampler).
class QueryDriver {
 public:
  virtual ~QueryDriver() = default;
  // Segment tasks ready to run. Each names its query, parent, children, seeds and sampling;
  // task ids are left 0 (the runner assigns them); prefix_tokens holds the parent's whole
  // token path (the prompt for a root task, whose parent is the query's prompt node).
  virtual Result<std::vector<protocols::SegmentTask>> TakeTasks() = 0;
  // The result of one of this query's tasks (results arrive in any order).
  virtual Status OnResult(const protocols::SegmentTask& task,
                          const protocols::SegmentResult& result) = 0;
  // Nodes whose KV no future task of this query can use.
  virtual std::vector<NodeId> TakeReleasable() = 0;
  virtual bool Done() const = 0;
  // The finished tree (leaves not yet scored). Precondition: Done().
  virtual Result<TreeRecord> TakeTree() = 0;
  // What the query needs in KV to start, for admission: its prompt's positions, the live
  // paths it will run at once and the tokens of one segment.
  struct Footprint {
    int64_t prompt_positions = 0;
    int paths = 1;
    int64_t segment_tokens = 0;
  };
  virtual Footprint footprint() const { return {}; }
  // The query's tree as it grows (pending and reported nodes), for watching it; valid while
  // the driver lives. Null where the driver keeps none.
  virtual const QueryTree* live_tree() const { return nullptr; }
};

// Makes the driver of query `index` (0-based, in the rollout's query order); its tasks carry
// QueryId(index + 1).
using DriverFactory = std::function<Result<std::unique_ptr<QueryDriver>>(size_t index)>;
// Scores a finished tree's leaves in place (sets each TreeLeafRecord::reward).
using TreeScorer = std::function<Status(TreeRecord* tree)>;

// Watches a rollout's queries as they grow (the dashboard's tree view). Called on the loop
// thread; must not block. `query` is the 0-based index within this rollout.
class RolloutObserver {
 public:
  virtual ~RolloutObserver() = default;
  virtual void OnRolloutStarted(size_t n_queries) = 0;
  // `query` was opened. `tree` (null where its driver keeps none) is the query's tree as it
  // grows; it stays valid until OnQueryFinished(query) returns. Watchers read it when they
  // need it instead of mirroring every task.
  virtual void OnQueryOpened(size_t query, const QueryTree* tree) = 0;
  // `task` (its task id set) was submitted for dispatch.
  virtual void OnTaskSubmitted(size_t query, const protocols::SegmentTask& task) = 0;
  // An accepted result of one of `query`'s tasks.
  virtual void OnTaskResult(size_t query, const InFlightTask& task,
                            const protocols::SegmentResult& result) = 0;
  // The finished, scored tree; it stays valid until OnRolloutFinished returns (a watcher may
  // keep a pointer and read it later).
  virtual void OnQueryFinished(size_t query, const TreeRecord& tree) = 0;
  // The rollout ended (done, failed or stopped): the trees given to OnQueryFinished go away.
  virtual void OnRolloutFinished() = 0;
};

struct RolloutRunOptions {
  int max_concurrent_queries = 8;  // queries open at once (>= 1)
  TreeScorer scorer;               // null: rewards stay 0
  // Called after each finished query with (finished, total).
  std::function<void(int64_t, int64_t)> on_progress;
  // Called with (query index, scored tree) as each query finishes, in finishing order (the
  // tree file is streamed from here). An error ends the rollout.
  std::function<Status(size_t, const TreeRecord&)> on_tree;
  int wait_workers_timeout_ms = 30000;  // with no live worker for this long the rollout fails
  RolloutObserver* observer = nullptr;  // null: none; outlives the rollout

  Status Validate() const;
};

struct WorkerUsage {
  WorkerId worker;
  std::string name;
  int64_t segments = 0;      // child results accepted from it
  double busy_fraction = 0;  // wall time with tasks in flight on it / rollout wall time
  int64_t peak_pages = 0;    // most KV pages in use it reported (during the service's life)
};

struct RolloutStats {
  int64_t queries = 0;
  int64_t leaves = 0;
  double wall_s = 0;
  int64_t tokens_decoded = 0;      // tokens of every accepted child result
  int64_t tokens_prefilled = 0;    // prefix positions workers computed for accepted tasks
  int64_t unique_tree_tokens = 0;  // tokens over every node of every tree
  int64_t tokens_unique = 0;       // unique_tree_tokens plus each prompt once
  // Placement (Dispatcher's PlacementCounters over this rollout).
  int64_t tokens_recomputed = 0;
  int64_t kv_migrations = 0;
  int64_t kv_bytes_migrated = 0;
  int64_t kv_migrations_failed = 0;
  int64_t kv_evictions = 0;
  int64_t tasks_waited = 0;
  int64_t decided_wait = 0, decided_recompute = 0, decided_migrate = 0;
  int64_t segments = 0;            // accepted child results (tree nodes computed)
  int64_t tasks = 0;               // accepted task results
  int64_t redispatched_tasks = 0;  // after a worker died or refused
  int64_t prompts_skipped = 0;     // too long for the context (set by the job, not RunRollout)
  std::vector<WorkerUsage> workers;
};

// Tokens the workers computed (prefilled + decoded) over the unique tokens (every node's tokens
// plus each prompt once); 0 when there are none. 1.0 means nothing was computed twice.
inline double ComputedOverUnique(int64_t prefilled, int64_t decoded, int64_t unique) {
  return unique > 0 ? static_cast<double>(prefilled + decoded) / static_cast<double>(unique) : 0.0;
}

struct RolloutOutput {
  std::vector<TreeRecord> trees;  // in query order
  RolloutStats stats;
};

// Runs `n_queries` rollouts to completion on the service's workers. kCancelled when *stop
// becomes true (stop may be null); a driver error or a fatal service error ends the rollout.
Result<RolloutOutput> RunRollout(SchedulerService* service, size_t n_queries,
                                 const DriverFactory& make_driver, const RolloutRunOptions& options,
                                 const std::atomic<bool>* stop);

}  // namespace treepo::scheduler

// What the dashboard shows, as immutable values: one DashboardSnapshot is a consistent picture of
// the scheduler at one loop turn. The loop thread builds it (SnapshotRecorder) and hands it to
// the HTTP thread by swapping a shared_ptr (SnapshotPublisher); nothing in it is ever modified
// after publication, so readers need no lock. Parts that change rarely (step lines, events,
// finished trees, nodes) are shared between consecutive snapshots, so a publication costs
// O(workers + changed trees), not O(history).
//
// Sequence numbers: every snapshot has a seq (1, 2, ...); every event, step line, tree and node
// carries the seq of the snapshot that first showed it in its current form. A client that has
// seen snapshot s asks for what has seq > s (the WebSocket deltas, /api/metrics?since=).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace treepo::scheduler::dashboard {

// One worker as of the snapshot.
struct WorkerView {
  uint32_t id = 0;
  std::string name;
  std::string state;  // "idle" | "busy" | "dead" | "fenced"
  uint64_t epoch = 0;
  uint64_t weight_version = 0;  // from its latest heartbeat
  uint32_t page_size = 0;       // tokens per KV page
  uint32_t pages_capacity = 0;  // from its registration
  uint32_t pages_used = 0;      // from its latest heartbeat
  uint32_t pages_free = 0;      // from its latest heartbeat
  int in_flight_tasks = 0;
  int in_flight_sequences = 0;
  int64_t heartbeat_age_ms = -1;  // since it was last heard from; -1: never
  int64_t registered_unix_ms = 0;
  int64_t tasks_done = 0;        // task results accepted from it
  int64_t segments_done = 0;     // child results (tree nodes) accepted from it
  int64_t tokens_decoded = 0;    // tokens of those children
  int64_t tokens_prefilled = 0;  // prefix positions it prefilled for accepted tasks
  double tasks_per_s = 0;        // over the last rate window (SnapshotRecorder)
  double tokens_per_s = 0;
  double busy_fraction = 0;  // of its registered time with tasks in flight
  // KV placement counters (filled by the placement code where it exists; 0 otherwise).
  int64_t tokens_recomputed = 0;
  int64_t kv_migrations_in = 0;
  int64_t kv_migrations_out = 0;
  int64_t kv_bytes_migrated = 0;
  int64_t kv_evictions = 0;
};

struct LearnerView {
  uint32_t id = 0;
  std::string name;
  uint32_t rank = 0;
  uint32_t world_size = 1;
  double step_s = 0;  // learner's own time for its last step (TrainDone train_s)
  double sync_s = 0;  // last step: TrainDone to every worker on the new weights
};

// Scheduler-wide counters since the service started and gauges of now.
struct SchedulerTotals {
  int64_t tasks_submitted = 0;
  int64_t task_results = 0;
  int64_t task_rejections = 0;
  int64_t segments = 0;  // child results accepted
  int64_t tokens_decoded = 0;
  int64_t tokens_prefilled = 0;
  int64_t tokens_recomputed = 0;  // prefill of KV that existed elsewhere (placement)
  int64_t kv_migrations = 0;
  int64_t kv_bytes_migrated = 0;
  int64_t kv_evictions = 0;
  int64_t tasks_waited = 0;  // tasks that waited in the queue for a worker with room
  int64_t frames_in = 0;
  int64_t stale_messages = 0;
  std::map<std::string, int64_t> rejected_frames;  // by reason (SchedulerService::Counters)
  int64_t dead_workers = 0;
  int64_t fenced_workers = 0;
  int64_t redispatched_tasks = 0;
  int64_t late_tasks = 0;
  int64_t queue_depth = 0;  // tasks waiting for a worker
  int64_t in_flight = 0;    // tasks on workers
  int64_t live_workers = 0;
  uint64_t weight_version = 0;  // stamped on new tasks
  double tasks_per_s = 0;
  double tokens_per_s = 0;
};

// Submission-to-result latency of segment tasks, as the scheduler sees it. Counts are
// per bucket (not cumulative); the last bucket is +Inf.
struct LatencyHistogram {
  std::vector<double> upper_bounds_s;  // ascending, finite
  std::vector<uint64_t> counts;        // upper_bounds_s.size() + 1
  double sum_s = 0;
  uint64_t count = 0;

  static LatencyHistogram WithDefaultBounds();
  void Observe(double seconds);
};

// The RL loop's latest figures (zero before the first step finishes).
struct RlView {
  bool active = false;  // an RL loop publishes steps
  int64_t step = -1;    // last finished step
  int64_t steps_total = 0;
  double reward_mean = 0;
  double accuracy = 0;
  double learner_step_s = 0;
  double weight_sync_s = 0;
  double step_s = 0;
};

struct EventView {
  uint64_t seq = 0;
  int64_t unix_ms = 0;
  std::string kind;  // join | restart | death | fence | weights | migration | learner | step | info
  std::string text;
};

// One line of the run's metrics (the RL loop's metrics.jsonl lines: step lines and eval lines).
struct MetricLine {
  uint64_t seq = 0;
  nlohmann::json line;
};

struct NodeView {
  uint64_t id = 0;
  uint64_t parent = 0;  // 0: child of the prompt
  int depth = 0;
  uint32_t worker = 0;  // 0 while pending
  uint64_t weight_version = 0;
  bool pending = true;  // dispatched, result not back
  std::vector<int32_t> tokens;
  std::string text;     // decoded (finished trees; live nodes are decoded on request)
  std::string finish;   // FinishReasonName of a path end, "" inside a path
  bool leaf = false;    // ends one of the tree's leaves (finished trees)
  double reward = 0;    // the leaf's reward when leaf
  bool pruned = false;  // finished tree: ends a path that is not a leaf (cut by the sampler)
  uint64_t seq = 0;
};

struct TreeView {
  uint64_t key = 0;      // dashboard-wide query number (1, 2, ...): /api/trees/{key}
  int64_t step = -1;     // RL step, -1 outside the RL loop
  int64_t index = 0;     // query index within its rollout
  std::string query_id;  // the record's id (finished trees)
  bool finished = false;
  std::vector<int32_t> prompt_tokens;
  std::string prompt_text;  // finished trees
  std::string answer;
  std::vector<std::shared_ptr<const NodeView>> nodes;  // parents before children
  int64_t leaves = 0;
  double reward_mean = 0;
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;
  uint64_t seq = 0;  // last change
};

struct DashboardSnapshot {
  uint64_t seq = 0;
  int64_t unix_ms = 0;
  double uptime_s = 0;
  std::string run_name;
  SchedulerTotals totals;
  std::vector<WorkerView> workers;
  std::vector<LearnerView> learners;
  LatencyHistogram latency;
  RlView rl;
  std::shared_ptr<const std::vector<EventView>> events;  // oldest first, bounded
  std::shared_ptr<const std::vector<MetricLine>> metrics;
  std::vector<std::shared_ptr<const TreeView>> trees;  // running, then finished newest first
  std::shared_ptr<const std::map<std::string, std::string>> config;  // effective settings
};

}  // namespace treepo::scheduler::dashboard

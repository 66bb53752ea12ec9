// The loop-thread side of the dashboard: watches the scheduler service (LoopObserver), the
// rollouts (RolloutObserver) and the RL loop (AddMetricLine, SetLearnerTimes), and every
// publish_interval_ms of loop time builds one immutable DashboardSnapshot and hands it to the
// SnapshotPublisher. The work per loop turn between publications is a clock read; per task
// and per result a few counter updates. The live trees are not mirrored task by task: each
// publication reads the open queries' own QueryTrees (OnQueryOpened) and makes new node views
// only for nodes added or answered since the previous one. Finished trees are built at
// publication too, and only the newest finished_trees of them.
//
// Events (joins, restarts, deaths, fencing, weight versions, learners) are found by comparing
// the worker registry with the previous publication's, so the service needs no event hooks.
//
// KV placement counters (tokens recomputed, migrations, bytes moved, evictions, tasks that
// waited) have their slots in the snapshot; RecordKvCounters is where the placement code
// reports them.
//
// Thread-safety: none; every call on the scheduler's loop thread. The publisher is the only
// thing shared with the HTTP thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scheduler/dashboard/publisher.h"
#include "scheduler/dashboard/snapshot.h"
#include "scheduler/service/rollout_runner.h"
#include "scheduler/service/scheduler_service.h"

namespace treepo::scheduler::dashboard {

struct RecorderOptions {
  int publish_interval_ms = 250;  // loop time between snapshots (>= 1)
  int rate_window_ms = 3000;      // tasks/s and tokens/s are averaged over this window
  int max_events = 500;           // events kept (oldest dropped)
  int finished_trees = 64;        // finished trees kept for browsing (oldest dropped)
  std::string run_name;           // shown in the page title
};

// Cumulative KV placement counters of one worker (0 where the placement code has none).
struct KvCounters {
  int64_t tokens_recomputed = 0;
  int64_t migrations_in = 0;
  int64_t migrations_out = 0;
  int64_t bytes_migrated = 0;
  int64_t evictions = 0;
};

class SnapshotRecorder final : public LoopObserver, public RolloutObserver {
 public:
  // `publisher` outlives the recorder.
  SnapshotRecorder(const RecorderOptions& options, SnapshotPublisher* publisher);

  // LoopObserver: publishes when publish_interval_ms passed since the last publication.
  void OnLoopTurn(const SchedulerService& service) override;
  // Builds and publishes a snapshot now.
  void PublishNow(const SchedulerService& service);

  // RolloutObserver.
  void OnRolloutStarted(size_t n_queries) override;
  void OnQueryOpened(size_t query, const QueryTree* tree) override;
  void OnTaskSubmitted(size_t query, const protocols::SegmentTask& task) override;
  void OnTaskResult(size_t query, const InFlightTask& task,
                    const protocols::SegmentResult& result) override;
  void OnQueryFinished(size_t query, const TreeRecord& tree) override;
  void OnRolloutFinished() override;

  // The RL loop: the step whose rollout comes next (trees are labelled with it), the number of
  // steps, and each metrics line as it is written (step lines and eval lines).
  void SetStep(int64_t step, int64_t steps_total);
  void AddMetricLine(const nlohmann::json& line);
  // An event of the caller's (kind as EventView::kind).
  void AddEvent(const std::string& kind, const std::string& text);
  // Effective settings shown on the page ("key" -> "value").
  void SetConfig(std::map<std::string, std::string> config);
  // The placement code's cumulative counters of `worker`, and scheduler-wide tasks that waited.
  void RecordKvCounters(WorkerId worker, const KvCounters& counters);
  void RecordTasksWaited(int64_t total);

  uint64_t published() const { return seq_; }

 private:
  struct WorkerStats {
    int64_t tasks = 0, segments = 0, tokens = 0, prefilled = 0;
    KvCounters kv;
  };
  struct Known {  // a worker as the previous publication saw it
    bool alive = true;
    uint64_t version = 0;
    bool has_version = false;
  };
  struct RateSample {
    int64_t ms = 0;
    int64_t tasks = 0, tokens = 0;
    std::map<uint32_t, std::pair<int64_t, int64_t>> by_worker;  // id -> (tasks, tokens)
  };
  struct LiveTree {
    const QueryTree* source = nullptr;  // the query's tree (null: none to show)
    // view.nodes[i] shows source->nodes()[i] as of the last refresh (a QueryTree only appends);
    // copied into a shared_ptr when it changed.
    TreeView view;
    std::shared_ptr<const TreeView> published;
    bool dirty = true;
  };

  // A finished query whose view is not built yet: its tree (valid until OnRolloutFinished)
  // and its live tree as last published (nodes shared with the finished view).
  struct Finished {
    const TreeRecord* tree = nullptr;
    LiveTree live;
    int64_t finished_unix_ms = 0;
  };

  void DiffRegistry(const SchedulerService& service, int64_t unix_ms);
  // Moves the finished queries' views into finished_ (new nodes carry `seq`).
  void BuildFinished(uint64_t seq);
  std::shared_ptr<const TreeView> FinishedView(const Finished& f, uint64_t seq);
  LiveTree& TreeFor(size_t query);
  // Brings tree->view.nodes up to date with its QueryTree: a new view for each node added or
  // changed (answered, ended a path) since the last refresh, the others shared; new views
  // carry `seq` (the snapshot they first appear in).
  void Refresh(LiveTree* tree, uint64_t seq);
  uint64_t NextSeq() const { return seq_ + 1; }

  RecorderOptions options_;
  SnapshotPublisher* publisher_;
  uint64_t seq_ = 0;
  int64_t last_publish_ms_ = -1;
  int64_t start_ms_ = -1;

  SchedulerTotals extra_;  // what the service does not count (segments, tokens, submitted, KV)
  std::map<uint32_t, WorkerStats> worker_stats_;
  std::map<uint32_t, Known> known_;
  std::map<std::string, uint32_t> dead_names_;  // worker name -> id of its dead registration
  std::map<uint32_t, bool> known_learners_;
  std::deque<RateSample> rate_samples_;
  LatencyHistogram latency_ = LatencyHistogram::WithDefaultBounds();
  // Submission times (steady clock, ms; -1 = answered) of task ids submit_base_, +1, ...:
  // task ids rise by one per task, so a window from the oldest unanswered one needs no map.
  std::deque<int64_t> submit_ms_;
  uint64_t submit_base_ = 0;
  int64_t now_ms_ = 0;  // loop clock at the last service call

  std::deque<EventView> events_;
  std::shared_ptr<const std::vector<EventView>> events_published_;
  bool events_dirty_ = true;
  std::vector<MetricLine> metrics_;
  std::shared_ptr<const std::vector<MetricLine>> metrics_published_;
  bool metrics_dirty_ = true;
  std::shared_ptr<const std::map<std::string, std::string>> config_;

  RlView rl_;
  LearnerView learner_times_;
  int64_t step_ = -1;
  uint64_t next_key_ = 1;
  std::map<size_t, uint64_t> query_key_;                  // this rollout's query index -> key
  std::map<uint64_t, LiveTree> running_;                  // by key
  std::deque<Finished> finishing_;                        // oldest first; built at publication
  std::deque<std::shared_ptr<const TreeView>> finished_;  // newest first
};

}  // namespace treepo::scheduler::dashboard

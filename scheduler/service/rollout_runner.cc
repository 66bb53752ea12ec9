#include "scheduler/service/rollout_runner.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "common/log.h"

namespace treepo::scheduler {
namespace {

// The runner's state; it is the service's ResultSink while the rollout runs.
class Runner final : public ResultSink {
 public:
  Runner(SchedulerService* service, size_t n_queries, const DriverFactory& make_driver,
         const RolloutRunOptions& options)
      : service_(service), n_(n_queries), make_driver_(make_driver), options_(options) {
    output_.trees.resize(n_queries);
  }

  void OnSegmentResult(const InFlightTask& task, const protocols::SegmentResult& result) override {
    // A task the dispatcher split answers under its parts' ids; it was submitted as `origin`.
    const TaskId submitted = task.origin.value() != 0 ? task.origin : task.task.task_id;
    auto it = task_query_.find(submitted);
    if (it == task_query_.end()) return;
    const size_t q = it->second;
    RolloutStats& s = output_.stats;
    ++s.tasks;
    s.tokens_prefilled += result.prefilled_tokens;
    for (const protocols::ChildResult& c : result.children) {
      ++s.segments;
      s.tokens_decoded += static_cast<int64_t>(c.tokens.size());
    }
    segments_by_worker_[result.worker_id] += static_cast<int64_t>(result.children.size());
    if (options_.observer != nullptr) options_.observer->OnTaskResult(q, task, result);
    auto d = open_.find(q);
    if (d == open_.end()) return;
    Status st = d->second->OnResult(task.task, result);
    if (!st.ok() && error_.ok()) error_ = st.WithContext("query " + std::to_string(q));
    touched_.push_back(q);
  }

  Result<RolloutOutput> Run(const std::atomic<bool>* stop) {
    const int64_t start_ms = service_->NowMs();
    int64_t no_worker_since = -1;
    while (finished_ < n_) {
      if (stop != nullptr && stop->load()) return Cancelled("rollout stopped");
      TREEPO_RETURN_IF_ERROR(Admit());
      TREEPO_RETURN_IF_ERROR(Advance());
      if (finished_ == n_) break;
      TREEPO_RETURN_IF_ERROR(service_->Pump(50));
      TREEPO_RETURN_IF_ERROR(error_);
      const int64_t now = service_->NowMs();
      if (service_->registry().live_count() > 0) {
        no_worker_since = -1;
      } else if (no_worker_since < 0) {
        no_worker_since = now;
      } else if (now - no_worker_since > options_.wait_workers_timeout_ms) {
        return Unavailable("no live worker for " + std::to_string(now - no_worker_since) + " ms");
      }
    }
    RolloutStats& s = output_.stats;
    s.wall_s = static_cast<double>(service_->NowMs() - start_ms) / 1000.0;
    s.queries = static_cast<int64_t>(n_);
    s.redispatched_tasks =
        service_->counters().redispatched_tasks + service_->counters().rejections;
    for (const TreeRecord& t : output_.trees) {
      s.leaves += static_cast<int64_t>(t.leaves.size());
      for (const TreeNodeRecord& node : t.nodes) s.unique_tree_tokens += node.tokens.size();
      s.tokens_unique += static_cast<int64_t>(t.prompt_tokens.size());
    }
    s.tokens_unique += s.unique_tree_tokens;
    const PlacementCounters& p = service_->dispatcher().placement();
    s.tokens_recomputed = p.tokens_recomputed - placement_before_.tokens_recomputed;
    s.kv_migrations = p.kv_migrations - placement_before_.kv_migrations;
    s.kv_bytes_migrated = p.kv_bytes_migrated - placement_before_.kv_bytes_migrated;
    s.kv_migrations_failed = p.kv_migrations_failed - placement_before_.kv_migrations_failed;
    s.kv_evictions = p.kv_evictions - placement_before_.kv_evictions;
    s.tasks_waited = p.tasks_waited - placement_before_.tasks_waited;
    s.decided_wait = p.decided_wait - placement_before_.decided_wait;
    s.decided_recompute = p.decided_recompute - placement_before_.decided_recompute;
    s.decided_migrate = p.decided_migrate - placement_before_.decided_migrate;
    const double wall_ms = std::max(1.0, s.wall_s * 1000.0);
    for (const auto& [id, w] : service_->registry().workers()) {
      WorkerUsage u;
      u.worker = id;
      u.name = w.name;
      u.segments = segments_by_worker_[id];
      u.busy_fraction =
          std::min(1.0, (service_->registry().BusyMs(id) - busy_before_[id]) / wall_ms);
      if (auto pk = service_->dispatcher().peak_pages().find(id);
          pk != service_->dispatcher().peak_pages().end()) {
        u.peak_pages = pk->second;
      }
      s.workers.push_back(std::move(u));
    }
    return std::move(output_);
  }

  void Start() {
    if (options_.observer != nullptr) options_.observer->OnRolloutStarted(n_);
    for (const auto& [id, w] : service_->registry().workers()) {
      busy_before_[id] = service_->registry().BusyMs(id);
    }
    placement_before_ = service_->dispatcher().placement();
  }

 private:
  // Opens queries while fewer than max_concurrent_queries are open and the workers' free KV
  // pages can take the next one's prompt and first segments (one query is always open).
  Status Admit() {
    while (next_ < n_ && open_.size() < static_cast<size_t>(options_.max_concurrent_queries)) {
      if (!next_driver_) {
        TREEPO_ASSIGN_OR_RETURN(next_driver_, make_driver_(next_));
      }
      const QueryDriver::Footprint f = next_driver_->footprint();
      if (!open_.empty() &&
          !service_->dispatcher().CanAdmit(f.prompt_positions, f.paths, f.segment_tokens)) {
        break;  // not enough KV now: admitted when pages free up
      }
      const size_t q = next_++;
      auto it = open_.emplace(q, std::move(next_driver_)).first;
      if (options_.observer != nullptr)
        options_.observer->OnQueryOpened(q, it->second->live_tree());
      touched_.push_back(q);
    }
    return OkStatus();
  }

  // Collects new tasks, releases and finished trees of every query that changed.
  Status Advance() {
    std::vector<size_t> touched;
    touched.swap(touched_);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (size_t q : touched) {
      auto it = open_.find(q);
      if (it == open_.end()) continue;
      QueryDriver& d = *it->second;
      TREEPO_ASSIGN_OR_RETURN(std::vector<protocols::SegmentTask> tasks, d.TakeTasks());
      for (protocols::SegmentTask& t : tasks) {
        t.task_id = service_->NextTaskId();
        task_query_[t.task_id] = q;
        tasks_of_[q].push_back(t.task_id);
        if (options_.observer != nullptr) options_.observer->OnTaskSubmitted(q, t);
        service_->Submit(std::move(t));
      }
      const std::vector<NodeId> release = d.TakeReleasable();
      if (!release.empty()) service_->Release(release);
      if (!d.Done()) continue;
      TREEPO_ASSIGN_OR_RETURN(TreeRecord tree, d.TakeTree());
      if (options_.scorer) TREEPO_RETURN_IF_ERROR(options_.scorer(&tree));
      if (options_.on_tree) TREEPO_RETURN_IF_ERROR(options_.on_tree(q, tree));
      service_->ReleaseQuery(QueryId(q + 1));  // whatever the workers still hold of it
      if (auto t = tasks_of_.find(q); t != tasks_of_.end()) {
        for (TaskId id : t->second) task_query_.erase(id);
        tasks_of_.erase(t);
      }
      output_.trees[q] = std::move(tree);
      if (options_.observer != nullptr) options_.observer->OnQueryFinished(q, output_.trees[q]);
      open_.erase(it);
      ++finished_;
      if (options_.on_progress) {
        options_.on_progress(static_cast<int64_t>(finished_), static_cast<int64_t>(n_));
      }
    }
    return OkStatus();
  }

  SchedulerService* service_;
  size_t n_;
  const DriverFactory& make_driver_;
  const RolloutRunOptions& options_;
  RolloutOutput output_;
  std::map<size_t, std::unique_ptr<QueryDriver>> open_;
  std::unordered_map<TaskId, size_t> task_query_;
  std::unordered_map<size_t, std::vector<TaskId>> tasks_of_;  // an open query's task ids
  std::vector<size_t> touched_;
  std::map<WorkerId, int64_t> segments_by_worker_;
  std::map<WorkerId, double> busy_before_;
  PlacementCounters placement_before_;
  std::unique_ptr<QueryDriver> next_driver_;  // made, not admitted yet
  size_t next_ = 0;
  size_t finished_ = 0;
  Status error_;
};

}  // namespace

Status RolloutRunOptions::Validate() const {
  if (max_concurrent_queries < 1) return InvalidArgument("max_concurrent_queries must be >= 1");
  if (wait_workers_timeout_ms < 1) return InvalidArgument("wait_workers_timeout_ms must be >= 1");
  return OkStatus();
}

Result<RolloutOutput> RunRollout(SchedulerService* service, size_t n_queries,
                                 const DriverFactory& make_driver, const RolloutRunOptions& options,
                                 const std::atomic<bool>* stop) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  Runner runner(service, n_queries, make_driver, options);
  runner.Start();
  service->set_result_sink(&runner);
  Result<RolloutOutput> out = runner.Run(stop);
  service->set_result_sink(nullptr);
  // The finished trees are still alive: in `out`, or in the runner after a failure.
  if (options.observer != nullptr) options.observer->OnRolloutFinished();
  return out;
}

}  // namespace treepo::scheduler

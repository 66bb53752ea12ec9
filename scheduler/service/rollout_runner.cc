#include "scheduler/service/rollout_runner.h"

#include <algorithm>
#include <string>

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
    auto it = task_query_.find(task.spec.task.task_id);
    if (it == task_query_.end()) return;
    const size_t q = it->second;
    task_query_.erase(it);
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
    Status st = d->second->OnResult(task.spec, result);
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
    }
    const double wall_ms = std::max(1.0, s.wall_s * 1000.0);
    for (const auto& [id, w] : service_->registry().workers()) {
      WorkerUsage u;
      u.worker = id;
      u.name = w.name;
      u.segments = segments_by_worker_[id];
      u.busy_fraction =
          std::min(1.0, (service_->registry().BusyMs(id) - busy_before_[id]) / wall_ms);
      s.workers.push_back(std::move(u));
    }
    return std::move(output_);
  }

  void Start() {
    if (options_.observer != nullptr) options_.observer->OnRolloutStarted(n_);
    for (const auto& [id, w] : service_->registry().workers()) {
      busy_before_[id] = service_->registry().BusyMs(id);
    }
  }

 private:
  Status Admit() {
    while (next_ < n_ && open_.size() < static_cast<size_t>(options_.max_concurrent_queries)) {
      const size_t q = next_++;
      TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<QueryDriver> d, make_driver_(q));
      open_.emplace(q, std::move(d));
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
      TREEPO_ASSIGN_OR_RETURN(std::vector<TaskSpec> tasks, d.TakeTasks());
      for (TaskSpec& t : tasks) {
        t.task.task_id = service_->NextTaskId();
        task_query_[t.task.task_id] = q;
        if (options_.observer != nullptr) options_.observer->OnTaskSubmitted(q, t);
        service_->Submit(std::move(t));
      }
      const std::vector<NodeId> release = d.TakeReleasable();
      if (!release.empty()) service_->Release(release);
      if (!d.Done()) continue;
      TREEPO_ASSIGN_OR_RETURN(TreeRecord tree, d.TakeTree());
      if (options_.scorer) TREEPO_RETURN_IF_ERROR(options_.scorer(&tree));
      if (options_.on_tree) TREEPO_RETURN_IF_ERROR(options_.on_tree(q, tree));
      if (options_.observer != nullptr) options_.observer->OnQueryFinished(q, tree);
      service_->ReleaseQuery(QueryId(q + 1));  // whatever the workers still hold of it
      output_.trees[q] = std::move(tree);
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
  std::map<TaskId, size_t> task_query_;
  std::vector<size_t> touched_;
  std::map<WorkerId, int64_t> segments_by_worker_;
  std::map<WorkerId, double> busy_before_;
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
  return out;
}

}  // namespace treepo::scheduler

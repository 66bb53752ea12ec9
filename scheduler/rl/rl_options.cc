#include "scheduler/rl/rl_loop.h"
#include "scheduler/service/tree_driver.h"

namespace treepo::scheduler {

Status RlOptions::Validate() const {
  TREEPO_RETURN_IF_ERROR(TreeDriverOptionsFrom(rollout).status());
  TREEPO_RETURN_IF_ERROR(rollout.service.Validate());
  if (rollout.max_concurrent_queries < 1) {
    return InvalidArgument("rollout.max_concurrent_queries must be >= 1");
  }
  if (steps < 0 || start_step < 0) return InvalidArgument("steps must be >= 0");
  if (queries_per_step < 1) return InvalidArgument("rollout.queries_per_step must be >= 1");
  if (learners < 1) return InvalidArgument("cluster.learners must be >= 1");
  if (max_extra_rounds < 0) return InvalidArgument("rollout.max_extra_rounds must be >= 0");
  if (sync_mode != "sync" && sync_mode != "async") {
    return InvalidArgument("sync.mode must be sync or async, not '" + sync_mode + "'");
  }
  if (sync_mode == "async" && max_staleness < 1) {
    return InvalidArgument("sync.max_staleness must be >= 1 in async mode");
  }
  if (workers < 1) return InvalidArgument("workers must be >= 1");
  if (rollout.dashboard.enabled) TREEPO_RETURN_IF_ERROR(rollout.dashboard.Validate());
  if (wait_learner_timeout_ms < 1 || train_timeout_ms < 1) {
    return InvalidArgument("timeouts must be >= 1 ms");
  }
  if (learner_on_failure != "fail" && learner_on_failure != "restart") {
    return InvalidArgument("learner.on_failure must be restart or fail, not '" +
                           learner_on_failure + "'");
  }
  if (max_learner_restarts < 0) return InvalidArgument("learner.max_restarts must be >= 0");
  if (keep_batches < 1) return InvalidArgument("keep_batches must be >= 1");
  return OkStatus();
}

Status LoadRlOptions(const Config& c, RlOptions* o) {
  RolloutJobOptions& r = o->rollout;
  TREEPO_RETURN_IF_ERROR(c.Get("steps", &o->steps));
  TREEPO_RETURN_IF_ERROR(c.Get("seed", &r.seed));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.mode", &r.mode));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.width", &r.width));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.segment_tokens", &r.segment_tokens));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.max_depth", &r.max_depth));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.branch", &r.branch));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.init_divergence", &r.init_divergence));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.max_init_divergence", &r.max_init_divergence));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.temperature", &r.temperature));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.top_p", &r.top_p));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.top_k", &r.top_k));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.reward", &r.reward));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.branching", &r.branching));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.extra_stop_rules", &r.extra_stop_rules));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.max_concurrent_queries", &r.max_concurrent_queries));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.queries_per_step", &o->queries_per_step));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.shuffle", &o->shuffle));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.dynamic_sampling", &o->dynamic_sampling));
  TREEPO_RETURN_IF_ERROR(c.Get("rollout.max_extra_rounds", &o->max_extra_rounds));
  TREEPO_RETURN_IF_ERROR(c.Get("sync.mode", &o->sync_mode));
  TREEPO_RETURN_IF_ERROR(c.Get("sync.max_staleness", &o->max_staleness));
  SchedulerOptions& s = r.service;
  TREEPO_RETURN_IF_ERROR(c.Get("scheduler.heartbeat_interval_ms", &s.heartbeat_interval_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("scheduler.heartbeat_timeout_ms", &s.heartbeat_timeout_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("scheduler.max_task_attempts", &s.max_task_attempts));
  TREEPO_RETURN_IF_ERROR(LoadPlacementKeys(c, "scheduler.", &s.dispatch));
  TREEPO_RETURN_IF_ERROR(LoadDeadlineKeys(c, "scheduler.", &s.dispatch));
  TREEPO_RETURN_IF_ERROR(c.Get("scheduler.wait_workers_timeout_ms", &r.wait_workers_timeout_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("sync.wait_learner_timeout_ms", &o->wait_learner_timeout_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("sync.train_timeout_ms", &o->train_timeout_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("learner.on_failure", &o->learner_on_failure));
  TREEPO_RETURN_IF_ERROR(c.Get("learner.max_restarts", &o->max_learner_restarts));
  TREEPO_RETURN_IF_ERROR(dashboard::LoadDashboardOptions(c, &r.dashboard));
  return OkStatus();
}

}  // namespace treepo::scheduler

#include "cluster/job/train_options.h"

#include <fmt/format.h>

#include <filesystem>

#include "cluster/pretrain_job.h"
#include "common/compute/decoder_backend.h"
#include "scheduler/dashboard/dashboard.h"

namespace treepo::cluster {

namespace fs = std::filesystem;

Status TrainOptions::Validate() const {
  if (out_dir.empty()) return InvalidArgument("out_dir is empty");
  if (workers < 1) return InvalidArgument("cluster.workers must be >= 1");
  if (learners < 1) return InvalidArgument("cluster.learners must be >= 1");
  if (train_problems < 1) return InvalidArgument("task.train_problems must be >= 1");
  if (learner_exit_timeout_ms < 1) {
    return InvalidArgument("cluster.learner_exit_timeout_ms must be >= 1");
  }
  if (worker_rejoin_timeout_ms < 0) {
    return InvalidArgument("cluster.worker_rejoin_timeout_ms must be >= 0");
  }
  return OkStatus();
}

scheduler::RlOptions TrainRlDefaults() {
  scheduler::RlOptions rl;
  rl.steps = 60;
  rl.rollout.max_concurrent_queries = 16;
  rl.rollout.width = 8;
  rl.rollout.segment_tokens = 16;
  rl.rollout.max_depth = 4;
  rl.rollout.branch = 2;
  rl.rollout.service.max_task_attempts = 100000;  // weight swaps refuse tasks briefly
  rl.rollout.dashboard.enabled = true;            // `rollout` leaves it off
  return rl;
}

learner::LearnerOptions TrainLearnerDefaults() {
  learner::LearnerOptions lo;
  lo.trainer.adamw.lr = 2e-5f;
  lo.trainer.adamw.warmup_steps = 2;
  lo.trainer.backend = "auto";  // the GPU where there is one (the library's default is cpu)
  return lo;
}

const std::vector<std::string>& DerivedLearnerKeys() {
  static const std::vector<std::string> kKeys = {"model",
                                                 "resume",
                                                 "checkpoint_dir",
                                                 "checkpoint_every",
                                                 "checkpoint_on_signal",
                                                 "blas_threads",
                                                 "max_staleness",
                                                 "rank",
                                                 "world_size",
                                                 "collective_store",
                                                 "collective_run_id"};
  return kKeys;
}

namespace {

Status LoadTrainOptions(const Config& c, TrainOptions* o) {
  TREEPO_RETURN_IF_ERROR(c.Get("out_dir", &o->out_dir));
  TREEPO_RETURN_IF_ERROR(c.Get("resume", &o->resume));
  TREEPO_RETURN_IF_ERROR(c.Get("model.base", &o->base));
  TREEPO_RETURN_IF_ERROR(c.Get("model.make_if_missing", &o->make_base));
  TREEPO_RETURN_IF_ERROR(c.Get("model.pretrain_steps", &o->pretrain_steps));
  TREEPO_RETURN_IF_ERROR(c.Get("model.task", &o->base_task));
  if (Status st = PretrainPreset(o->base_task).status(); !st.ok()) {
    return InvalidArgument("config key 'model.task': " + st.message());
  }
  TREEPO_RETURN_IF_ERROR(c.Get("task.prompts", &o->prompts));
  TREEPO_RETURN_IF_ERROR(c.Get("task.prompt_field", &o->prompt_field));
  TREEPO_RETURN_IF_ERROR(c.Get("task.answer_field", &o->answer_field));
  TREEPO_RETURN_IF_ERROR(o->chat.Load(c, "task."));
  if (Status s = o->chat.Validate(); !s.ok()) return s.WithContext("task");
  TREEPO_RETURN_IF_ERROR(c.Get("task.train_problems", &o->train_problems));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.workers", &o->workers));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.learners", &o->learners));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.learner_command", &o->learner_command));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.worker_threads", &o->worker_threads));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.worker_sampler", &o->worker_sampler));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.worker_backend", &o->worker_backend));
  // Only the name is checked here: the workers' hosts, not this one, must have the device.
  TREEPO_RETURN_IF_ERROR(compute::CheckBackendName("cluster.worker_backend", o->worker_backend));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.worker_pages", &o->worker_pages));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.page_size", &o->page_size));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.learner_threads", &o->learner_threads));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.learner_exit_timeout_ms", &o->learner_exit_timeout_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.worker_rejoin_timeout_ms", &o->worker_rejoin_timeout_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.before", &o->eval_before));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.after", &o->eval_after));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.checkpoints", &o->eval_checkpoints));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.problems", &o->eval_problems));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.samples", &o->eval_samples));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.max_new_tokens", &o->eval_max_new_tokens));
  TREEPO_RETURN_IF_ERROR(c.Get("output.checkpoint_every", &o->checkpoint_every));
  TREEPO_RETURN_IF_ERROR(c.Get("output.trees", &o->write_trees));
  TREEPO_RETURN_IF_ERROR(c.Get("output.report", &o->report));
  TREEPO_RETURN_IF_ERROR(c.Get("output.progress", &o->progress));
  TREEPO_RETURN_IF_ERROR(c.Get("scheduler.curve", &o->curve));
  TREEPO_RETURN_IF_ERROR(c.Get("scheduler.key_dir", &o->key_dir));
  TREEPO_RETURN_IF_ERROR(c.Get("scheduler.advertise", &o->advertise));
  return OkStatus();
}

std::string Bool(bool b) { return b ? "true" : "false"; }

}  // namespace

Status LoadTrainJobOptions(const Config& config, TrainJobOptions* o) {
  TREEPO_RETURN_IF_ERROR(LoadTrainOptions(config, &o->train));
  TREEPO_RETURN_IF_ERROR(scheduler::LoadRlOptions(config, &o->rl));
  TREEPO_RETURN_IF_ERROR(config.Get("scheduler.bind", &o->rl.rollout.service.bind_endpoint));
  TREEPO_RETURN_IF_ERROR(learner::LoadLearnerOptions(config, "learner.", &o->learner));
  for (const std::string& derived : DerivedLearnerKeys()) {
    if (config.Has("learner." + derived)) {
      return InvalidArgument("learner." + derived +
                             " is set by `treepo train` from other keys (configs/default.toml)");
    }
  }
  TREEPO_RETURN_IF_ERROR(config.CheckAllConsumed());
  return o->train.Validate();
}

void DeriveTrainJobOptions(TrainJobOptions* o) {
  const TrainOptions& t = o->train;
  scheduler::RlOptions& rl = o->rl;
  learner::LearnerOptions& lo = o->learner;
  rl.workers = t.workers;
  rl.learners = t.learners;
  lo.world_size = t.learners;
  rl.progress = t.progress;
  if (rl.sync_mode == "async") lo.trainer.max_staleness = rl.max_staleness;
  lo.blas_threads = t.learner_threads;
  lo.checkpoint_every = t.checkpoint_every;
  // The learner's last checkpoint comes on the scheduler's Shutdown, never on a signal: a
  // killed `train` sends it SIGTERM before recording the step it trained.
  lo.checkpoint_on_signal = false;
  lo.checkpoint_dir = (fs::path(t.out_dir) / "checkpoints").string();
  // A restarted learner resumes from the newest complete checkpoint (or the one before, when
  // the newest is incomplete): the loop keeps the batches of every step since.
  rl.keep_batches = t.checkpoint_every > 0 ? 2 * int64_t{t.checkpoint_every} + 2 : rl.steps + 1;
  rl.rollout.dashboard.url_file =
      (fs::path(t.out_dir) / scheduler::dashboard::kDashboardUrlFile).string();
}

std::map<std::string, std::string> TrainSettings(const TrainJobOptions& o) {
  const TrainOptions& t = o.train;
  const scheduler::RlOptions& r = o.rl;
  const scheduler::RolloutJobOptions& ro = r.rollout;
  const scheduler::DispatchLimits& d = ro.service.dispatch;
  const scheduler::dashboard::DashboardOptions& db = ro.dashboard;
  std::map<std::string, std::string> kv = {
      {"out_dir", t.out_dir},
      {"resume", t.resume},
      {"model.base", t.base},
      {"model.make_if_missing", Bool(t.make_base)},
      {"model.pretrain_steps", fmt::format("{}", t.pretrain_steps)},
      {"model.task", t.base_task},
      {"task.prompts", t.prompts},
      {"task.prompt_field", t.prompt_field},
      {"task.answer_field", t.answer_field},
      {"task.chat", t.chat.enabled ? "true" : "false"},
      {"task.system_prompt", t.chat.system_prompt},
      {"task.instruction_suffix", t.chat.instruction_suffix},
      {"task.enable_thinking", t.chat.enable_thinking},
      {"task.train_problems", fmt::format("{}", t.train_problems)},
      {"cluster.workers", fmt::format("{}", t.workers)},
      {"cluster.learners", fmt::format("{}", t.learners)},
      {"cluster.learner_command", t.learner_command},
      {"cluster.worker_threads", fmt::format("{}", t.worker_threads)},
      {"cluster.worker_sampler", t.worker_sampler},
      {"cluster.worker_backend", t.worker_backend},
      {"cluster.worker_pages", fmt::format("{}", t.worker_pages)},
      {"cluster.page_size", fmt::format("{}", t.page_size)},
      {"cluster.learner_threads", fmt::format("{}", t.learner_threads)},
      {"cluster.learner_exit_timeout_ms", fmt::format("{}", t.learner_exit_timeout_ms)},
      {"cluster.worker_rejoin_timeout_ms", fmt::format("{}", t.worker_rejoin_timeout_ms)},
      {"eval.before", Bool(t.eval_before)},
      {"eval.after", Bool(t.eval_after)},
      {"eval.checkpoints", Bool(t.eval_checkpoints)},
      {"eval.problems", fmt::format("{}", t.eval_problems)},
      {"eval.samples", fmt::format("{}", t.eval_samples)},
      {"eval.max_new_tokens", fmt::format("{}", t.eval_max_new_tokens)},
      {"output.checkpoint_every", fmt::format("{}", t.checkpoint_every)},
      {"output.trees", Bool(t.write_trees)},
      {"output.report", Bool(t.report)},
      {"output.progress", Bool(t.progress)},
      {"scheduler.curve", Bool(t.curve)},
      {"scheduler.key_dir", t.key_dir},
      {"scheduler.advertise", t.advertise},
      {"scheduler.bind", ro.service.bind_endpoint},
      {"steps", fmt::format("{}", r.steps)},
      {"seed", fmt::format("{}", ro.seed)},
      {"rollout.mode", ro.mode},
      {"rollout.width", fmt::format("{}", ro.width)},
      {"rollout.segment_tokens", fmt::format("{}", ro.segment_tokens)},
      {"rollout.max_depth", fmt::format("{}", ro.max_depth)},
      {"rollout.branch", fmt::format("{}", ro.branch)},
      {"rollout.init_divergence", ro.init_divergence},
      {"rollout.max_init_divergence", fmt::format("{}", ro.max_init_divergence)},
      {"rollout.temperature", fmt::format("{}", ro.temperature)},
      {"rollout.top_p", fmt::format("{}", ro.top_p)},
      {"rollout.top_k", fmt::format("{}", ro.top_k)},
      {"rollout.reward", ro.reward},
      {"rollout.branching", ro.branching},
      {"rollout.extra_stop_rules", ro.extra_stop_rules},
      {"rollout.queries_per_step", fmt::format("{}", r.queries_per_step)},
      {"rollout.max_concurrent_queries", fmt::format("{}", ro.max_concurrent_queries)},
      {"rollout.shuffle", Bool(r.shuffle)},
      {"rollout.dynamic_sampling", Bool(r.dynamic_sampling)},
      {"rollout.max_extra_rounds", fmt::format("{}", r.max_extra_rounds)},
      {"sync.mode", r.sync_mode},
      {"sync.max_staleness", fmt::format("{}", r.max_staleness)},
      {"sync.wait_learner_timeout_ms", fmt::format("{}", r.wait_learner_timeout_ms)},
      {"sync.train_timeout_ms", fmt::format("{}", r.train_timeout_ms)},
      {"learner.on_failure", r.learner_on_failure},
      {"learner.max_restarts", fmt::format("{}", r.max_learner_restarts)},
      {"scheduler.heartbeat_interval_ms", fmt::format("{}", ro.service.heartbeat_interval_ms)},
      {"scheduler.heartbeat_timeout_ms", fmt::format("{}", ro.service.heartbeat_timeout_ms)},
      {"scheduler.max_task_attempts", fmt::format("{}", ro.service.max_task_attempts)},
      {"scheduler.wait_workers_timeout_ms", fmt::format("{}", ro.wait_workers_timeout_ms)},
      {"scheduler.placement_policy", d.policy},
      {"scheduler.move_min_gain_ms", fmt::format("{}", d.move_min_gain_ms)},
      {"scheduler.move_min_gain_fraction", fmt::format("{}", d.move_min_gain_fraction)},
      {"scheduler.assumed_link_mb_per_s", fmt::format("{}", d.assumed_link_bytes_per_s / 1e6)},
      {"scheduler.link_latency_ms", fmt::format("{}", d.link_latency_ms)},
      {"scheduler.assumed_prefill_factor", fmt::format("{}", d.assumed_prefill_factor)},
      {"scheduler.transfer_timeout_ms", fmt::format("{}", d.transfer_timeout_ms)},
      {"scheduler.debug_migrate_every", fmt::format("{}", d.debug_migrate_every)},
      {"scheduler.task_deadline_floor_ms", fmt::format("{}", d.deadline_floor_ms)},
      {"scheduler.task_deadline_multiplier", fmt::format("{}", d.deadline_multiplier)},
      {"scheduler.assumed_tokens_per_s", fmt::format("{}", d.assumed_tokens_per_s)},
      {"scheduler.max_missed_deadlines", fmt::format("{}", d.max_missed_deadlines)},
      {"scheduler.max_task_deadline_misses", fmt::format("{}", d.max_task_deadline_misses)},
      {"dashboard.enabled", Bool(db.enabled)},
      {"dashboard.bind", db.bind},
      {"dashboard.token", db.token.empty() ? "" : "(set)"},
      {"dashboard.publish_interval_ms", fmt::format("{}", db.publish_interval_ms)},
      {"dashboard.push_interval_ms", fmt::format("{}", db.push_interval_ms)},
      {"dashboard.finished_trees", fmt::format("{}", db.finished_trees)},
      {"dashboard.max_events", fmt::format("{}", db.max_events)},
      {"dashboard.max_connections", fmt::format("{}", db.max_connections)}};
  for (const std::string& s : learner::LearnerOptionSets(o.learner)) {
    const size_t eq = s.find('=');
    kv["learner." + s.substr(0, eq)] = s.substr(eq + 1);
  }
  return kv;
}

}  // namespace treepo::cluster

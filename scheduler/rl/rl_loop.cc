#include "scheduler/rl/rl_loop.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "common/line_appender.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/tree/tree_record.h"
#include "common/tree/tree_shards.h"
#include "scheduler/dataset/prompt_admission.h"
#include "scheduler/rl/weight_relay.h"
#include "scheduler/service/rollout_runner.h"
#include "scheduler/service/tree_driver.h"

namespace treepo::scheduler {
namespace {

namespace pr = protocols;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

bool AllRewardsEqual(const TreeRecord& t) {
  for (const TreeLeafRecord& l : t.leaves) {
    if (l.reward != t.leaves.front().reward) return false;
  }
  return true;
}

// One step's rollout: every round's trees, the kept ones (what the learner trains on) and
// the figures the metrics line reports.
struct StepRollout {
  std::vector<TreeRecord> all;
  std::vector<TreeRecord> kept;
  int rounds = 0;
  int64_t dropped_queries = 0;
  int64_t leaves = 0;
  int64_t unique_tree_tokens = 0;
  int64_t tokens_decoded = 0;
  int64_t tokens_prefilled = 0;
  int64_t tokens_unique = 0;
  int64_t tokens_recomputed = 0, kv_migrations = 0, kv_bytes_migrated = 0, kv_evictions = 0;
  int64_t tasks_waited = 0;
  double rollout_s = 0.0;
  double reward_sum = 0.0;
  int64_t correct = 0;
  int64_t prompts_drawn = 0;  // by the dataset cursor since the run began, after this step
  uint64_t version_min = UINT64_MAX, version_max = 0;
};

class Loop {
 public:
  Loop(const RlOptions& o, std::vector<PromptRecord> train,
       std::shared_ptr<const model::TextTokenizer> tokenizer, SchedulerService* service,
       dashboard::SnapshotRecorder* recorder, const std::atomic<bool>* stop)
      : o_(o),
        train_(std::move(train)),
        tokenizer_(std::move(tokenizer)),
        service_(service),
        relay_(service, o.learners),
        recorder_(recorder),
        stop_(stop),
        cursor_(static_cast<int64_t>(train_.size()), o.shuffle, o.rollout.seed) {
    service_->set_learner_handler(&relay_);
  }
  ~Loop() { service_->set_learner_handler(nullptr); }

  Result<RlSummary> Run() {
    const auto start = Clock::now();
    TREEPO_RETURN_IF_ERROR(
        service_->WaitForWorkers(o_.workers, o_.rollout.wait_workers_timeout_ms, stop_));
    TREEPO_RETURN_IF_ERROR(PumpUntil(
        [&] { return relay_.newest().has_value() && !relay_.learners().empty(); },
        o_.wait_learner_timeout_ms,
        o_.learners > 1 ? "every learner rank and rank 0's weights" : "the learner's weights"));
    base_version_ = relay_.newest()->value() - static_cast<uint64_t>(o_.start_step);
    TREEPO_RETURN_IF_ERROR(PumpUntil([&] { return relay_.AllWorkersAtLeast(*relay_.newest()); },
                                     o_.train_timeout_ms, "every worker on the learner's weights"));
    spdlog::info("RL: {} workers on weight version {}; steps {}..{} ({} mode, {} queries/step)",
                 service_->registry().live_count(), relay_.newest()->value(), o_.start_step,
                 o_.steps, o_.sync_mode, o_.queries_per_step);
    // A resumed run continues the prompt order where the saved run stopped.
    const int64_t skip =
        o_.start_cursor >= 0 ? o_.start_cursor : o_.start_step * o_.queries_per_step;
    for (int64_t i = 0; i < skip; ++i) NextPrompt();
    if (!o_.metrics_path.empty()) {
      if (recorder_ != nullptr) ShowEarlierMetrics();
      TREEPO_ASSIGN_OR_RETURN(metrics_, LineAppender::Open(o_.metrics_path));
    }
    if (!o_.trees_dir.empty()) std::filesystem::create_directories(o_.trees_dir);

    ProgressBar bar("steps", o_.steps - o_.start_step, o_.progress);
    bar_ = &bar;
    run_start_ = start;
    const bool async = o_.sync_mode == "async";
    for (int64_t step = o_.start_step; step < o_.steps; ++step) {
      const auto step_start = Clock::now();
      // Rollout `step` needs weights of version >= base + step (sync) or base + step - k.
      const int64_t lag = async ? o_.max_staleness : 0;
      const WeightVersion need(base_version_ +
                               static_cast<uint64_t>(std::max(o_.start_step, step - lag)));
      // Every worker on the newest version (relayed here, between rollouts): the rollout's
      // tasks are stamped with it, and a worker's engine runs only its own version.
      TREEPO_RETURN_IF_ERROR(PumpUntil(
          [&] { return *relay_.newest() >= need && relay_.AllWorkersAtLeast(*relay_.newest()); },
          o_.train_timeout_ms, "workers on the needed version"));
      const double gate_s = Since(step_start);
      service_->set_weight_version(*relay_.newest());
      TREEPO_ASSIGN_OR_RETURN(StepRollout r, Rollout(step));
      TREEPO_RETURN_IF_ERROR(SendBatch(step, r));
      Pending p;
      p.line = RolloutLine(step, r);
      p.line["gate_s"] = gate_s;
      p.step_start = step_start;
      p.sent = Clock::now();
      pending_.emplace(step, std::move(p));
      if (!async) TREEPO_RETURN_IF_ERROR(FinishStep(step));
      TREEPO_RETURN_IF_ERROR(FinishArrived());
    }
    for (int64_t step = o_.start_step; step < o_.steps; ++step) {
      if (pending_.count(step)) TREEPO_RETURN_IF_ERROR(FinishStep(step));
    }
    TREEPO_RETURN_IF_ERROR(PumpUntil([&] { return relay_.AllWorkersAtLeast(*relay_.newest()); },
                                     o_.train_timeout_ms, "every worker on the final version"));
    bar.Finish("done");
    bar_ = nullptr;
    summary_.wall_s = Since(start);
    summary_.steps_done = o_.steps - o_.start_step;
    if (summary_.steps_done > 0) {
      summary_.mean_step_s = summary_.wall_s / static_cast<double>(summary_.steps_done);
    }
    summary_.final_version = relay_.newest()->value();
    summary_.worker_versions = relay_.WorkerVersions();
    return summary_;
  }

  // After a failed or stopped run: writes the lines of the steps whose TrainDone has arrived
  // (whatever the workers' acks), so the learner's final checkpoint on Shutdown is not ahead
  // of the metrics file.
  void RecordArrived() {
    for (int i = 0; i < 3 && !pending_.empty(); ++i) service_->Pump(10).IgnoreError();
    while (!pending_.empty()) {
      const int64_t step = pending_.begin()->first;
      std::optional<pr::TrainDone> done = relay_.TakeTrainDone(static_cast<uint64_t>(step));
      if (!done) {
        spdlog::warn("RL: step {} has no TrainDone: not recorded", step);
        return;
      }
      WriteLine(step, *done, Clock::now()).IgnoreError();
    }
  }

  // Tells the learner and the workers to stop, and gives the frames time to leave.
  void Shutdown(const std::string& reason) {
    for (const auto& [id, l] : service_->registry().learners()) {
      service_->SendToLearner(id, pr::Shutdown{reason}).IgnoreError();  // gone ones too
    }
    service_->ShutdownWorkers(reason).IgnoreError();
    for (int i = 0; i < 5; ++i) service_->Pump(20).IgnoreError();
  }

 private:
  struct Pending {
    nlohmann::json line;
    Clock::time_point step_start, sent;
  };

  // The lines already in the metrics file (the base model's eval, the steps of a resumed run)
  // go to the dashboard's curves too.
  void ShowEarlierMetrics() {
    std::ifstream in(o_.metrics_path);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object()) recorder_->AddMetricLine(j);
    }
  }

  Status PumpUntil(const std::function<bool()>& done, int timeout_ms, const std::string& what) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      TREEPO_RETURN_IF_ERROR(relay_.error());
      if (done()) return OkStatus();
      if (stop_ != nullptr && stop_->load()) return Cancelled("stopped waiting for " + what);
      if (Clock::now() > deadline) {
        return DeadlineExceeded("timed out after " + std::to_string(timeout_ms) +
                                " ms waiting for " + what);
      }
      TREEPO_RETURN_IF_ERROR(service_->Pump(50));
      if (std::optional<std::string> lost = relay_.TakeLearnerLost()) {
        TREEPO_RETURN_IF_ERROR(RecoverLearner(*lost));
      }
      relay_.SyncWorkers();
    }
  }

  Result<StepRollout> Rollout(int64_t step) {
    StepRollout r;
    std::vector<TreeRecord> dropped;
    const auto t0 = Clock::now();
    if (recorder_ != nullptr) recorder_->SetStep(step, o_.steps);
    size_t need = static_cast<size_t>(o_.queries_per_step);
    for (int round = 0;; ++round) {
      auto records = std::make_shared<std::vector<PromptRecord>>();
      for (size_t i = 0; i < need; ++i) records->push_back(train_[NextPrompt()]);
      RolloutJobOptions job = o_.rollout;
      // A fresh sampling stream per step and round, a pure function of the run seed.
      job.seed = o_.rollout.seed + 1000003ULL * static_cast<uint64_t>(step + 1) +
                 static_cast<uint64_t>(round);
      TREEPO_ASSIGN_OR_RETURN(TreeDriverSetup setup, MakeTreeDriverSetup(job, records, tokenizer_));
      RolloutRunOptions ro;
      ro.max_concurrent_queries = job.max_concurrent_queries;
      ro.scorer = setup.scorer;
      ro.wait_workers_timeout_ms = job.wait_workers_timeout_ms;
      ro.observer = recorder_;
      TREEPO_ASSIGN_OR_RETURN(RolloutOutput out,
                              RunRollout(service_, records->size(), setup.factory, ro, stop_));
      ++r.rounds;
      r.tokens_decoded += out.stats.tokens_decoded;
      r.tokens_prefilled += out.stats.tokens_prefilled;
      r.tokens_unique += out.stats.tokens_unique;
      r.tokens_recomputed += out.stats.tokens_recomputed;
      r.kv_migrations += out.stats.kv_migrations;
      r.kv_bytes_migrated += out.stats.kv_bytes_migrated;
      r.kv_evictions += out.stats.kv_evictions;
      r.tasks_waited += out.stats.tasks_waited;
      r.unique_tree_tokens += out.stats.unique_tree_tokens;
      for (TreeRecord& t : out.trees) {
        for (const TreeLeafRecord& l : t.leaves) {
          ++r.leaves;
          r.reward_sum += l.reward;
          if (l.reward > 0) ++r.correct;
        }
        for (const TreeNodeRecord& n : t.nodes) {
          r.version_min = std::min(r.version_min, n.weight_version);
          r.version_max = std::max(r.version_max, n.weight_version);
        }
        r.all.push_back(t);
        if (o_.dynamic_sampling && AllRewardsEqual(t)) {
          ++r.dropped_queries;
          dropped.push_back(std::move(t));
        } else {
          r.kept.push_back(std::move(t));
        }
      }
      if (!o_.dynamic_sampling || r.kept.size() >= static_cast<size_t>(o_.queries_per_step) ||
          round >= o_.max_extra_rounds) {
        break;
      }
      need = static_cast<size_t>(o_.queries_per_step) - r.kept.size();
    }
    if (r.kept.empty()) {
      spdlog::warn("step {}: every query's rewards were equal; training on them anyway", step);
      r.kept = std::move(dropped);
    }
    if (r.kept.size() > static_cast<size_t>(o_.queries_per_step)) {
      r.kept.resize(static_cast<size_t>(o_.queries_per_step));
    }
    r.rollout_s = Since(t0);
    r.prompts_drawn = prompts_drawn_;
    if (!o_.trees_dir.empty()) {
      char name[32];
      std::snprintf(name, sizeof(name), "step_%06lld.jsonl", static_cast<long long>(step));
      TREEPO_RETURN_IF_ERROR(
          WriteTreeFile((std::filesystem::path(o_.trees_dir) / name).string(), r.all));
    }
    return r;
  }

  int64_t NextPrompt() {
    ++prompts_drawn_;
    return cursor_.Next();
  }

  // One TreeBatch per learner rank: its shard of the kept trees (possibly none). Each is kept
  // (the last keep_batches steps) to be sent again to a restarted learner.
  Status SendBatch(int64_t step, StepRollout& r) {
    const std::vector<LearnerId> ranks = relay_.learners();
    if (ranks.empty()) return Unavailable("not every learner rank is registered");
    std::vector<pr::TreeBatch> batches(ranks.size());
    const auto shards = ShardTreesByTokens(r.kept, static_cast<int>(ranks.size()));
    for (size_t rank = 0; rank < ranks.size(); ++rank) {
      batches[rank].step = static_cast<uint64_t>(step);
      batches[rank].prompts_drawn = static_cast<uint64_t>(r.prompts_drawn);
      if (ranks.size() == 1) {
        batches[rank].trees = std::move(r.kept);
      } else {
        for (size_t i : shards[rank]) batches[rank].trees.push_back(std::move(r.kept[i]));
      }
    }
    sent_batches_[step] = batches;
    while (!sent_batches_.empty() && sent_batches_.begin()->first <= step - o_.keep_batches) {
      sent_batches_.erase(sent_batches_.begin());
    }
    // A learner lost meanwhile (during the rollout) gets this step with the others.
    if (std::optional<std::string> lost = relay_.TakeLearnerLost()) return RecoverLearner(*lost);
    for (size_t rank = 0; rank < ranks.size(); ++rank) {
      const Status st = service_->SendToLearner(ranks[rank], std::move(batches[rank]));
      if (!st.ok()) return LearnerUnreachable(st);
    }
    return OkStatus();
  }

  // A send to a learner failed (its connection is gone): wait for the loss to be declared
  // (its process exit, or the heartbeat timeout) and recover; else the send's error.
  Status LearnerUnreachable(const Status& send) {
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(o_.rollout.service.heartbeat_timeout_ms + 1000);
    while (Clock::now() < deadline) {
      if (std::optional<std::string> lost = relay_.TakeLearnerLost()) return RecoverLearner(*lost);
      TREEPO_RETURN_IF_ERROR(service_->Pump(50));
    }
    return send;
  }

  // A learner was declared dead: fail (learner.on_failure = fail), or restart it from its
  // newest complete checkpoint and send it the trees of every step since that checkpoint.
  Status RecoverLearner(const std::string& why) {
    if (o_.learner_on_failure != "restart" || !o_.restart_learner) {
      return Unavailable(why + " (learner.on_failure = " + o_.learner_on_failure + ")");
    }
    if (restarts_ >= o_.max_learner_restarts) {
      return Unavailable(why + "; not restarted: learner.max_restarts = " +
                         std::to_string(o_.max_learner_restarts) + " restarts done");
    }
    ++restarts_;
    const auto lost_at = Clock::now();
    spdlog::warn("RL: {}: restarting the learner ({} of at most {})", why, restarts_,
                 o_.max_learner_restarts);
    relay_.ExpectRestart();
    TREEPO_RETURN_IF_ERROR(o_.restart_learner(why));
    const auto deadline = lost_at + std::chrono::milliseconds(o_.wait_learner_timeout_ms);
    while (!relay_.restart_version() || relay_.learners().empty()) {
      TREEPO_RETURN_IF_ERROR(relay_.error());
      if (std::optional<std::string> again = relay_.TakeLearnerLost()) {
        return Unavailable("the restarted learner was lost too: " + *again);
      }
      if (stop_ != nullptr && stop_->load()) return Cancelled("stopped restarting the learner");
      if (Clock::now() > deadline) {
        return DeadlineExceeded("the restarted learner did not register and publish within " +
                                std::to_string(o_.wait_learner_timeout_ms) +
                                " ms (sync.wait_learner_timeout_ms)");
      }
      TREEPO_RETURN_IF_ERROR(service_->Pump(50));
    }
    const uint64_t v = relay_.restart_version()->value();
    if (v < base_version_) {
      return FailedPrecondition("the restarted learner is on weight version " + std::to_string(v) +
                                ", before this run's base version " +
                                std::to_string(base_version_));
    }
    const int64_t from = static_cast<int64_t>(v - base_version_);
    const int64_t last = sent_batches_.empty() ? from - 1 : sent_batches_.rbegin()->first;
    std::vector<LearnerId> ranks = relay_.learners();
    for (int64_t step = from; step <= last; ++step) {
      auto it = sent_batches_.find(step);
      if (it == sent_batches_.end()) {
        return FailedPrecondition("the restarted learner resumes at step " + std::to_string(from) +
                                  " but the trees of step " + std::to_string(step) +
                                  " are no longer kept");
      }
      for (size_t rank = 0; rank < ranks.size() && rank < it->second.size(); ++rank) {
        TREEPO_RETURN_IF_ERROR(service_->SendToLearner(ranks[rank], it->second[rank]));
      }
    }
    spdlog::warn(
        "RL: learner restarted at step {} (weight version {}) in {:.2f} s; sent steps "
        "{}..{} again",
        from, v, Since(lost_at), from, last);
    return OkStatus();
  }

  nlohmann::json RolloutLine(int64_t step, const StepRollout& r) const {
    nlohmann::json j;
    const double leaves = static_cast<double>(std::max<int64_t>(1, r.leaves));
    const double secs = std::max(1e-9, r.rollout_s);
    j["step"] = step;
    j["reward_mean"] = r.reward_sum / leaves;
    j["accuracy"] = static_cast<double>(r.correct) / leaves;
    j["leaves"] = r.leaves;
    j["queries"] = static_cast<int64_t>(r.all.size());
    j["dropped_queries"] = r.dropped_queries;
    j["rollout_rounds"] = r.rounds;
    j["leaves_per_s"] = static_cast<double>(r.leaves) / secs;
    j["tokens"] = r.tokens_decoded;
    j["tokens_per_s"] = static_cast<double>(r.tokens_decoded) / secs;
    // Positions the workers ran through the model: prefixes they had no KV for, plus every
    // sampled token. Tree sampling shares prefixes, so it computes fewer for the same leaves.
    j["tokens_prefilled"] = r.tokens_prefilled;
    j["tokens_computed"] = r.tokens_prefilled + r.tokens_decoded;
    j["tokens_decoded"] = r.tokens_decoded;
    j["tokens_unique"] = r.tokens_unique;
    j["computed_over_unique"] =
        ComputedOverUnique(r.tokens_prefilled, r.tokens_decoded, r.tokens_unique);
    j["tokens_recomputed"] = r.tokens_recomputed;
    j["kv_migrations"] = r.kv_migrations;
    j["kv_bytes_migrated"] = r.kv_bytes_migrated;
    j["kv_evictions"] = r.kv_evictions;
    j["tasks_waited"] = r.tasks_waited;
    j["unique_tree_tokens"] = r.unique_tree_tokens;
    j["rollout_version_min"] = r.version_min == UINT64_MAX ? 0 : r.version_min;
    j["rollout_version_max"] = r.version_max;
    j["newest_version_at_rollout_end"] = relay_.newest() ? relay_.newest()->value() : 0;
    j["rollout_s"] = r.rollout_s;
    j["prompts_drawn"] = r.prompts_drawn;
    return j;
  }

  // Waits for the step's TrainDone and, in sync mode, every worker's ack of its version;
  // then writes the step's metrics line.
  // A step whose TrainDone arrived is recorded even when a later wait fails: the learner has
  // trained it, and its checkpoint must not be ahead of the metrics file.
  Status FinishStep(int64_t step) {
    std::optional<pr::TrainDone> done;
    Status st = PumpUntil(
        [&] {
          if (!done) done = relay_.TakeTrainDone(static_cast<uint64_t>(step));
          return done && relay_.newest() && *relay_.newest() >= done->new_version;
        },
        o_.train_timeout_ms, "TrainDone of step " + std::to_string(step));
    const auto trained = Clock::now();
    if (st.ok() && o_.sync_mode == "sync") {
      st = PumpUntil([&] { return relay_.AllWorkersAtLeast(done->new_version); },
                     o_.train_timeout_ms, "every worker's WeightAck");
    }
    if (done) TREEPO_RETURN_IF_ERROR(WriteLine(step, *done, trained));
    return st;
  }

  // Async mode: finishes the oldest pending steps whose TrainDone has arrived.
  Status FinishArrived() {
    while (!pending_.empty()) {
      const int64_t step = pending_.begin()->first;
      std::optional<pr::TrainDone> done = relay_.TakeTrainDone(static_cast<uint64_t>(step));
      if (!done) return OkStatus();
      TREEPO_RETURN_IF_ERROR(WriteLine(step, *done, Clock::now()));
    }
    return OkStatus();
  }

  Status WriteLine(int64_t step, const pr::TrainDone& done, Clock::time_point trained) {
    auto it = pending_.find(step);
    if (it == pending_.end()) return OkStatus();
    Pending p = std::move(it->second);
    pending_.erase(it);
    nlohmann::json& j = p.line;
    for (const pr::Metric& m : done.metrics) {
      if (m.name == "tokens") {
        j["train_tokens"] = m.value;
      } else if (m.name == "train_s") {
        j["learner_train_s"] = m.value;
      } else {
        j[m.name] = m.value;
      }
    }
    j["weight_version"] = done.new_version.value();
    j["train_s"] = std::chrono::duration<double>(trained - p.sent).count();
    j["sync_s"] = Since(trained);
    j["step_s"] = Since(p.step_start);
    j["wall_s"] = Since(run_start_);
    j["worker_versions"] = relay_.WorkerVersions();
    if (metrics_.is_open()) TREEPO_RETURN_IF_ERROR(metrics_.Append(j.dump()));
    if (recorder_ != nullptr) recorder_->AddMetricLine(j);
    const double acc = j["accuracy"].get<double>(), reward = j["reward_mean"].get<double>();
    if (step == o_.start_step) {
      summary_.first_accuracy = acc;
      summary_.first_reward_mean = reward;
    }
    summary_.last_accuracy = acc;
    summary_.last_reward_mean = reward;
    ++finished_;
    if (o_.progress) {
      spdlog::info(
          "step {}/{}: reward {:+.3f} acc {:.3f} loss {:+.4f} clip {:.3f} v{} "
          "rollout {:.1f}s train {:.1f}s sync {:.2f}s",
          step + 1, o_.steps, reward, acc, j.value("loss", 0.0), j.value("clip_fraction", 0.0),
          done.new_version.value(), j["rollout_s"].get<double>(), j["train_s"].get<double>(),
          j["sync_s"].get<double>());
    }
    if (bar_ != nullptr) {
      char status[64];
      std::snprintf(status, sizeof(status), "acc %.2f v%llu", acc,
                    static_cast<unsigned long long>(done.new_version.value()));
      bar_->Update(finished_, status);
    }
    return OkStatus();
  }

  const RlOptions& o_;
  std::vector<PromptRecord> train_;
  std::shared_ptr<const model::TextTokenizer> tokenizer_;
  SchedulerService* service_;
  WeightRelay relay_;
  dashboard::SnapshotRecorder* recorder_;  // null: no dashboard
  const std::atomic<bool>* stop_;
  DatasetCursor cursor_;
  uint64_t base_version_ = 0;
  int64_t prompts_drawn_ = 0;
  int restarts_ = 0;
  std::map<int64_t, std::vector<pr::TreeBatch>> sent_batches_;  // step -> one per rank
  std::map<int64_t, Pending> pending_;
  LineAppender metrics_;
  ProgressBar* bar_ = nullptr;
  Clock::time_point run_start_;
  int64_t finished_ = 0;
  RlSummary summary_;
};

}  // namespace

Result<RlSummary> RunRl(const RlOptions& options, std::vector<PromptRecord> train,
                        std::shared_ptr<const PromptEncoder> encoder,
                        const std::function<Status(const std::string&)>& on_bound,
                        const std::atomic<bool>* stop) {
  std::shared_ptr<const model::TextTokenizer> tokenizer = encoder->tokenizer();
  TREEPO_RETURN_IF_ERROR(options.Validate());
  if (train.empty()) return InvalidArgument("RL: no train prompts");
  // Every prompt is tokenized once, here, so that the service loop never tokenizes.
  TREEPO_ASSIGN_OR_RETURN(
      const int64_t max_prompt_tokens,
      MaxPromptTokens(options.max_seq_len, static_cast<int64_t>(options.rollout.max_depth) *
                                               options.rollout.segment_tokens));
  const size_t loaded = train.size();
  TREEPO_ASSIGN_OR_RETURN(AdmittedPrompts admitted,
                          AdmitPrompts(std::move(train), *encoder, max_prompt_tokens));
  if (admitted.records.empty()) {
    return InvalidArgument("all " + std::to_string(loaded) + " train prompts are longer than the " +
                           std::to_string(max_prompt_tokens) +
                           " tokens that leave room for the response in the model's context");
  }
  const int64_t skipped = static_cast<int64_t>(admitted.skipped.size());
  if (skipped > 0) {
    spdlog::warn("RL: {} of {} train prompts skipped: longer than {} tokens", skipped, loaded,
                 max_prompt_tokens);
  }
  train = std::move(admitted.records);
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<SchedulerService> service,
                          SchedulerService::Create(options.rollout.service));
  std::unique_ptr<dashboard::Dashboard> dash;
  if (options.rollout.dashboard.enabled) {
    TREEPO_ASSIGN_OR_RETURN(dash, dashboard::Dashboard::Start(
                                      options.rollout.dashboard,
                                      [tokenizer](const std::vector<int32_t>& t) {
                                        return tokenizer->Decode(t, false);
                                      },
                                      "train"));
    dash->recorder().SetConfig(options.dashboard_config);
    dash->recorder().SetStep(options.start_step, options.steps);
    service->set_loop_observer(&dash->recorder());
  }
  Loop loop(options, std::move(train), std::move(tokenizer), service.get(),
            dash ? &dash->recorder() : nullptr, stop);
  service->set_liveness_probe(options.rollout.liveness_probe);
  if (on_bound) TREEPO_RETURN_IF_ERROR(on_bound(service->endpoint()));
  Result<RlSummary> out = loop.Run();
  if (out.ok()) out->prompts_skipped = skipped;
  service->set_liveness_probe(nullptr);  // the children exit on Shutdown now
  if (!out.ok()) loop.RecordArrived();
  loop.Shutdown(out.ok() ? "training complete" : "training failed");
  service->set_loop_observer(nullptr);
  return out;
}

}  // namespace treepo::scheduler

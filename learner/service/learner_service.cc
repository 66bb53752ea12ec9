#include "learner/service/learner_service.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/clock.h"
#include "common/collective/collective.h"
#include "common/cpu/ops.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "learner/advantage/advantage.h"
#include "learner/service/checkpoint.h"
#include "learner/service/learner_connection.h"
#include "learner/service/train_batch.h"
#include "learner/service/weight_publisher.h"
#include "protocols/messages.h"

namespace treepo::learner {
namespace {

namespace pr = protocols;

// The step's metrics over every rank (world_size > 1): sums and token-weighted means of the
// per-rank parts; grad_norm, lr and optimizer_steps are the same on every rank already.
Status ReduceMetrics(collective::Collective& c, TrainStepMetrics* m, LearnerBatch* b) {
  const double n = static_cast<double>(m->tokens);
  std::vector<double> sum = {
      m->loss,
      m->clip_fraction * n,
      m->ratio_mean * n,
      m->kl_mean * n,
      m->entropy_mean * n,
      m->advantage_mean * n,
      (m->advantage_std * m->advantage_std + m->advantage_mean * m->advantage_mean) * n,
      m->logp_mismatch * n,
      n,
      static_cast<double>(m->sequences),
      static_cast<double>(b->truncated_sequences),
      b->raw_advantage_mean * n};
  std::vector<double> max = {m->ratio_max, m->logp_mismatch_max, m->train_s};
  TREEPO_RETURN_IF_ERROR(c.AllReduceSum(sum));
  TREEPO_RETURN_IF_ERROR(c.AllReduceMax(max));
  const double total = sum[8];
  const double inv = total > 0 ? 1.0 / total : 0.0;
  m->loss = sum[0];
  m->clip_fraction = sum[1] * inv;
  m->ratio_mean = sum[2] * inv;
  m->kl_mean = sum[3] * inv;
  m->entropy_mean = sum[4] * inv;
  m->advantage_mean = sum[5] * inv;
  m->advantage_std = std::sqrt(std::max(0.0, sum[6] * inv - m->advantage_mean * m->advantage_mean));
  m->logp_mismatch = sum[7] * inv;
  m->tokens = static_cast<int64_t>(total);
  m->sequences = static_cast<int64_t>(sum[9]);
  b->truncated_sequences = static_cast<int64_t>(sum[10]);
  b->raw_advantage_mean = sum[11] * inv;
  m->ratio_max = max[0];
  m->logp_mismatch_max = max[1];
  m->train_s = max[2];
  return OkStatus();
}

uint64_t WeightsHash(const model::ModelWeights& w) {
  return pr::Fnv1a64(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(w.data.data()),
                                              w.data.size() * sizeof(float)));
}

// The ranks' collective (world_size 1: a no-op one). With several ranks the trainer reduces
// over it, and rank 0's weights are every rank's start (checked: a rank that loaded others
// fails).
Result<std::unique_ptr<collective::Collective>> JoinRanks(const LearnerOptions& o,
                                                          const std::string& name,
                                                          const std::string& weights_from,
                                                          LearnerAlgorithm* trainer) {
  collective::CollectiveOptions co;
  co.backend = o.collective_backend;
  co.rank = o.rank;
  co.world_size = o.world_size;
  co.store_dir = o.collective_store;
  co.run_id = o.collective_run_id;
  co.host = o.collective_host;
  co.timeout_ms = o.collective_timeout_ms;
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<collective::Collective> ranks,
                          collective::CreateCollective(co));
  if (o.world_size == 1) return ranks;
  TREEPO_RETURN_IF_ERROR(trainer->set_collective(ranks.get()));
  model::ModelWeights start = trainer->weights();
  TREEPO_RETURN_IF_ERROR(ranks->Broadcast(std::span<float>(start.data), 0));
  if (WeightsHash(start) != WeightsHash(trainer->weights())) {
    return FailedPrecondition("learner rank " + std::to_string(o.rank) +
                              " loaded other weights than rank 0 from " + weights_from);
  }
  spdlog::info("{}: rank {} of {} joined its peers ({}, group {})", name, o.rank, o.world_size,
               ranks->backend(), o.collective_run_id);
  return ranks;
}

// After a data-parallel step: the metrics over every rank, and (check_weights) the check
// that every rank holds the same weights.
Status ReduceStep(collective::Collective& ranks, const LearnerAlgorithm& trainer,
                  bool check_weights, uint64_t step, TrainStepMetrics* metrics,
                  LearnerBatch* batch) {
  TREEPO_RETURN_IF_ERROR(ReduceMetrics(ranks, metrics, batch));
  if (!check_weights) return OkStatus();
  TREEPO_ASSIGN_OR_RETURN(const bool same,
                          collective::AllRanksEqual(ranks, WeightsHash(trainer.weights())));
  if (!same) {
    return Internal("after step " + std::to_string(step) +
                    " the learner ranks hold different weights");
  }
  return OkStatus();
}

// Runs `work` on a helper thread while this one keeps heartbeating (the connection stays on
// this thread), so a long training step or checkpoint does not look like a dead learner.
template <typename F>
auto Heartbeating(LearnerConnection& conn, F&& work) -> decltype(work()) {
  auto done = std::async(std::launch::async, std::forward<F>(work));
  const auto every = std::chrono::milliseconds(conn.heartbeat_interval_ms());
  while (done.wait_for(every) != std::future_status::ready) conn.SendHeartbeat().IgnoreError();
  return done.get();
}

}  // namespace

Status RunLearner(const LearnerOptions& o, std::atomic<bool>* stop) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  if (o.scheduler_endpoint.empty()) return InvalidArgument("learner: no scheduler endpoint");
  if (o.blas_threads > 0) cpu::SetBlasThreads(o.blas_threads);
  const std::string name = o.name.empty() ? "learner-" + std::to_string(::getpid()) : o.name;

  CheckpointState state;
  const std::string weights_from = o.resume_dir.empty() ? o.model_path : o.resume_dir;
  TREEPO_ASSIGN_OR_RETURN(model::ModelWeights weights, model::LoadModel(weights_from));
  if (!o.resume_dir.empty()) {
    TREEPO_ASSIGN_OR_RETURN(state, ReadCheckpointState(o.resume_dir));
  }
  const int max_seq_len = weights.config.max_seq_len;
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<AdvantageEstimator> estimator,
                          MakeAdvantageEstimator(o.estimator));
  LearnerAlgorithmOptions ao;
  ao.trainer = &o.trainer;
  ao.settings = o.algorithm_options;
  ao.version = WeightVersion(state.version);
  ao.rank = o.rank;
  ao.world_size = o.world_size;
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<LearnerAlgorithm> trainer,
                          MakeLearnerAlgorithm(o.algorithm, std::move(weights), ao));
  if (!o.resume_dir.empty()) {
    const std::string saved_by =
        state.algorithm.empty() ? kDefaultLearnerAlgorithm : state.algorithm;
    if (saved_by != trainer->name()) {
      return FailedPrecondition(
          "checkpoint " + o.resume_dir + " was written by learner algorithm '" + saved_by +
          "', this learner runs '" + std::string(trainer->name()) + "' (learner.algorithm)");
    }
    TREEPO_RETURN_IF_ERROR(trainer->LoadState(o.resume_dir));
    spdlog::info("{}: resumed from {} at step {} (weight version {})", name, o.resume_dir,
                 state.step, state.version);
  }

  // Data-parallel ranks meet before registering, so the scheduler never sees a rank that
  // cannot train.
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<collective::Collective> ranks,
                          JoinRanks(o, name, weights_from, trainer.get()));
  const bool parallel = o.world_size > 1;
  const bool lead = o.rank == 0;  // publishes, reports and checkpoints

  ConnectionOptions copt;
  copt.scheduler_endpoint = o.scheduler_endpoint;
  copt.name = name;
  copt.rank = o.rank;
  copt.world_size = o.world_size;
  copt.register_timeout_ms = o.register_timeout_ms;
  copt.keys = o.keys;
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<LearnerConnection> conn,
                          LearnerConnection::Connect(copt, stop));
  spdlog::info("{}: registered with {} ({} estimator, {} learner algorithm, lr {})", name,
               o.scheduler_endpoint, estimator->name(), trainer->name(), o.trainer.adamw.lr);

  MessageWeightPublisher publisher([&conn](pr::Payload p) { return conn->Send(std::move(p)); },
                                   static_cast<size_t>(o.weight_chunk_bytes));
  if (lead) TREEPO_RETURN_IF_ERROR(publisher.Publish(trainer->version(), trainer->weights().data));
  SumReducer reduce_sum;
  if (parallel) reduce_sum = [&ranks](std::span<double> v) { return ranks->AllReduceSum(v); };

  int64_t step = state.step;
  int64_t saved_step = o.resume_dir.empty() ? -1 : state.step;
  // The scheduler's dataset cursor after the last trained batch (kept in checkpoints).
  int64_t prompts_drawn = state.prompts_drawn;
  auto checkpoint = [&]() -> Status {
    if (!lead || o.checkpoint_dir.empty() || saved_step == step) return OkStatus();
    const std::string dir = CheckpointDir(o.checkpoint_dir, step);
    TREEPO_RETURN_IF_ERROR(Heartbeating(*conn, [&] {
      CheckpointState cs;
      cs.step = step;
      cs.version = trainer->version().value();
      cs.prompts_drawn = prompts_drawn;
      return SaveCheckpoint(dir, *trainer, cs, weights_from);
    }));
    saved_step = step;
    spdlog::info("{}: checkpoint {}", name, dir);
    return OkStatus();
  };

  // A checkpoint checkpoint_every asked for, written on the scheduler's next message (the
  // header says why).
  bool checkpoint_due = false;
  // Heartbeats tell the scheduler this learner lives (it restarts or fails the run when they
  // stop, docs/rl-loop.md); they go on while a step trains (Heartbeating).
  int64_t next_heartbeat = 0;
  // The scheduler echoes heartbeats: once it has, its silence means its head is gone.
  bool echoes = false;
  int64_t last_heard_ms = SteadyNowMs();
  while (stop == nullptr || !stop->load()) {
    if (SteadyNowMs() >= next_heartbeat) {
      conn->SendHeartbeat().IgnoreError();
      next_heartbeat = SteadyNowMs() + conn->heartbeat_interval_ms();
    }
    TREEPO_ASSIGN_OR_RETURN(std::optional<pr::Message> m,
                            conn->Recv(std::min(200, conn->heartbeat_interval_ms())));
    if (!m) {
      // Nothing queued (a long step's echoes are read first): a silence, or not yet.
      const int64_t silent_ms = SteadyNowMs() - last_heard_ms;
      if (echoes && o.scheduler_timeout_ms > 0 && silent_ms > o.scheduler_timeout_ms) {
        return Unavailable("the scheduler at " + o.scheduler_endpoint + " has been silent for " +
                           std::to_string(silent_ms) +
                           " ms: its run is gone (a resumed run starts a learner of its own)");
      }
      continue;
    }
    last_heard_ms = SteadyNowMs();
    if (m->get_if<pr::Heartbeat>() != nullptr) {
      echoes = true;
      continue;
    }
    if (checkpoint_due && (m->get_if<pr::TreeBatch>() || m->get_if<pr::Shutdown>())) {
      checkpoint_due = false;
      TREEPO_RETURN_IF_ERROR(checkpoint());
    }
    if (const auto* tb = m->get_if<pr::TreeBatch>()) {
      if (static_cast<int64_t>(tb->step) != step) {
        spdlog::warn("{}: TreeBatch for step {} while at step {}", name, tb->step, step);
      }
      Result<LearnerBatch> batch = InvalidArgument("not built");
      Result<TrainStepMetrics> metrics = Heartbeating(*conn, [&]() -> Result<TrainStepMetrics> {
        batch = BuildLearnerBatch(tb->trees, *estimator, max_seq_len, reduce_sum);
        Result<TrainStepMetrics> out =
            batch.ok() ? trainer->Step(*batch) : Result<TrainStepMetrics>(batch.status());
        if (out.ok() && parallel) {
          const Status st = ReduceStep(*ranks, *trainer, o.check_weights, tb->step, &*out, &*batch);
          if (!st.ok()) out = st;
        }
        return out;
      });
      if (!metrics.ok()) {
        spdlog::error("{}: step {} failed: {}", name, tb->step, metrics.status().ToString());
        // A peer rank that is gone (the collective says kUnavailable) is not this batch's
        // fault: the rank exits, and the scheduler restarts the whole group (learner.on_failure)
        // or ends the run on the exits it sees.
        if (parallel && metrics.status().code() == StatusCode::kUnavailable) {
          return metrics.status();
        }
        TREEPO_RETURN_IF_ERROR(conn->Send(pr::ErrorReply{
            metrics.status().code(), metrics.status().message(), pr::MessageType::kTreeBatch}));
        // Ranks that took different paths cannot go on together.
        if (parallel) return metrics.status();
        continue;
      }
      step = static_cast<int64_t>(tb->step) + 1;
      prompts_drawn = tb->prompts_drawn > 0 ? static_cast<int64_t>(tb->prompts_drawn) : -1;
      if (lead) {
        TREEPO_RETURN_IF_ERROR(publisher.Publish(trainer->version(), trainer->weights().data));
        pr::TrainDone done{tb->step, trainer->version(), ToMetrics(*metrics)};
        done.metrics.push_back(
            {"truncated_sequences", static_cast<double>(batch->truncated_sequences)});
        done.metrics.push_back({"raw_advantage_mean", batch->raw_advantage_mean});
        if (parallel) done.metrics.push_back({"learner_ranks", static_cast<double>(o.world_size)});
        TREEPO_RETURN_IF_ERROR(conn->Send(std::move(done)));
      }
      spdlog::info(
          "{}: step {} -> version {}: loss {:.4f} clip {:.3f} ratio max {:.3f} "
          "grad norm {:.3f} mismatch {:.2e} tokens {} in {:.2f}s",
          name, tb->step, trainer->version().value(), metrics->loss, metrics->clip_fraction,
          metrics->ratio_max, metrics->grad_norm, metrics->logp_mismatch, metrics->tokens,
          metrics->train_s);
      if (o.checkpoint_every > 0 && step % o.checkpoint_every == 0) checkpoint_due = true;
    } else if (const auto* sd = m->get_if<pr::Shutdown>()) {
      spdlog::info("{}: shutdown ({})", name, sd->reason);
      return checkpoint();
    } else if (const auto* err = m->get_if<pr::ErrorReply>()) {
      if (err->code == StatusCode::kFailedPrecondition) {
        return FailedPrecondition("scheduler fenced this learner: " + err->message);
      }
      if (err->code == StatusCode::kNotFound) {
        // Not this learner's scheduler: a new head on the endpoint (`train --resume`), which
        // starts a learner of its own from the newest checkpoint.
        return NotFound("the scheduler at " + o.scheduler_endpoint +
                        " does not know this learner (a new head?): " + err->message);
      }
      spdlog::warn("{}: scheduler refused {}: {}", name, pr::MessageTypeName(err->about),
                   err->message);
    }
  }
  if (!o.checkpoint_on_signal) {
    if (saved_step != step) {
      spdlog::warn("{}: stopped by a signal at step {}: no final checkpoint (newest is step {})",
                   name, step, saved_step);
    }
    return OkStatus();
  }
  return checkpoint();
}

}  // namespace treepo::learner

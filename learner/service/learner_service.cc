#include "learner/service/learner_service.h"

#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/clock.h"
#include "common/cpu/ops.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "learner/advantage/advantage.h"
#include "learner/service/checkpoint.h"
#include "learner/service/train_batch.h"
#include "learner/service/weight_publisher.h"
#include "protocols/codec.h"
#include "protocols/transport.h"

namespace treepo::learner {
namespace {

namespace pr = protocols;

int64_t NowMs() { return SteadyNowMs(); }

// The learner's connection: the Dealer plus the identity the scheduler assigned.
class Connection {
 public:
  explicit Connection(pr::Dealer dealer) : dealer_(std::move(dealer)) {}

  Status Send(pr::Payload payload) {
    pr::Message m;
    m.sender = id_;
    m.epoch = epoch_;
    m.payload = std::move(payload);
    return dealer_.Send(pr::Encode(m));
  }

  // The next decoded message; nullopt when none came within timeout_ms or it did not decode
  // (logged with a bound: the 1st, 10th, 100th, ... bad frame).
  Result<std::optional<pr::Message>> Recv(int timeout_ms) {
    TREEPO_ASSIGN_OR_RETURN(auto frame, dealer_.Recv(timeout_ms));
    if (!frame) return std::optional<pr::Message>();
    Result<pr::Message> m = pr::Decode(*frame);
    if (!m.ok()) {
      if (++bad_frames_ == 1 || bad_frames_ == 10 || bad_frames_ % 100 == 0) {
        spdlog::warn("learner: dropping a bad frame from the scheduler ({} so far): {}",
                     bad_frames_, m.status().ToString());
      }
      return std::optional<pr::Message>();
    }
    return std::optional<pr::Message>(std::move(*m));
  }

  Status Register(const LearnerOptions& o, const std::string& name, std::atomic<bool>* stop) {
    const int64_t deadline = NowMs() + o.register_timeout_ms;
    pr::RegisterLearner reg;
    reg.learner_name = name;
    reg.rank = static_cast<uint32_t>(o.rank);
    reg.world_size = static_cast<uint32_t>(o.world_size);
    std::string refusal;  // the last AlreadyExists refusal
    while (NowMs() < deadline) {
      if (stop != nullptr && stop->load()) return Cancelled("stopped while registering");
      TREEPO_RETURN_IF_ERROR(Send(reg));
      const int64_t retry_until = std::min(deadline, NowMs() + 1000);
      while (NowMs() < retry_until) {
        TREEPO_ASSIGN_OR_RETURN(auto m, Recv(static_cast<int>(retry_until - NowMs())));
        if (!m) continue;
        if (const auto* ack = m->get_if<pr::RegisterAck>()) {
          id_ = ack->assigned_id;
          epoch_ = ack->epoch;
          return OkStatus();
        }
        if (const auto* err = m->get_if<pr::ErrorReply>()) {
          // A key of another role: final. Another learner connected: retried until the
          // deadline, in case it is on its way out.
          if (err->code == StatusCode::kInvalidArgument &&
              err->about == pr::MessageType::kRegisterLearner) {
            return InvalidArgument("the scheduler refused this learner: " + err->message);
          }
          if (err->code == StatusCode::kAlreadyExists && refusal.empty()) {
            spdlog::warn("learner: the scheduler refused the registration: {}", err->message);
          }
          if (err->code == StatusCode::kAlreadyExists) refusal = err->message;
        }
      }
    }
    if (!refusal.empty()) {
      return AlreadyExists("the scheduler refused this learner: " + refusal);
    }
    return DeadlineExceeded("no RegisterAck from the scheduler within " +
                            std::to_string(o.register_timeout_ms) + " ms");
  }

 private:
  pr::Dealer dealer_;
  uint32_t id_ = 0;
  uint64_t epoch_ = 0;
  int64_t bad_frames_ = 0;
};

}  // namespace

Status RunLearner(const LearnerOptions& o, std::atomic<bool>* stop) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  if (o.world_size > 1) {
    return Unimplemented("data-parallel learners (world_size " + std::to_string(o.world_size) +
                         ") are not supported yet: run one learner (world_size = 1)");
  }
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
  TREEPO_ASSIGN_OR_RETURN(
      std::unique_ptr<Trainer> trainer,
      Trainer::Create(std::move(weights), o.trainer, WeightVersion(state.version)));
  if (!o.resume_dir.empty()) {
    TREEPO_RETURN_IF_ERROR(
        trainer->optimizer().Load(o.resume_dir + "/" + std::string(kOptimizerFile)));
    spdlog::info("{}: resumed from {} at step {} (weight version {})", name, o.resume_dir,
                 state.step, state.version);
  }

  pr::Context context;
  pr::DealerOptions dopt;
  // Unique per process: the Router hands an identity over to its newest connection, so a
  // second learner of the same name must not take over the first one's.
  dopt.identity = name + "#" + std::to_string(::getpid()) + "." + std::to_string(NowMs() % 1000000);
  dopt.socket.send_timeout_ms = 30000;  // weight chunks wait for room rather than fail
  TREEPO_ASSIGN_OR_RETURN(dopt.curve, pr::ResolveClientKeys(o.keys, o.scheduler_endpoint));
  TREEPO_ASSIGN_OR_RETURN(pr::Dealer dealer,
                          pr::Dealer::Connect(context, o.scheduler_endpoint, dopt));
  Connection conn(std::move(dealer));
  TREEPO_RETURN_IF_ERROR(conn.Register(o, name, stop));
  spdlog::info("{}: registered with {} ({} estimator, lr {})", name, o.scheduler_endpoint,
               estimator->name(), o.trainer.adamw.lr);

  MessageWeightPublisher publisher([&conn](pr::Payload p) { return conn.Send(std::move(p)); },
                                   static_cast<size_t>(o.weight_chunk_bytes));
  TREEPO_RETURN_IF_ERROR(publisher.Publish(trainer->version(), trainer->weights().data));

  int64_t step = state.step;
  int64_t saved_step = o.resume_dir.empty() ? -1 : state.step;
  auto checkpoint = [&]() -> Status {
    if (o.checkpoint_dir.empty() || saved_step == step) return OkStatus();
    const std::string dir = CheckpointDir(o.checkpoint_dir, step);
    TREEPO_RETURN_IF_ERROR(SaveCheckpoint(dir, trainer->weights(), trainer->optimizer(),
                                          {step, trainer->version().value()}, weights_from));
    saved_step = step;
    spdlog::info("{}: checkpoint {}", name, dir);
    return OkStatus();
  };

  // A checkpoint checkpoint_every asked for, written on the scheduler's next message (the
  // header says why).
  bool checkpoint_due = false;
  while (stop == nullptr || !stop->load()) {
    TREEPO_ASSIGN_OR_RETURN(std::optional<pr::Message> m, conn.Recv(200));
    if (!m) continue;
    if (checkpoint_due && (m->get_if<pr::TreeBatch>() || m->get_if<pr::Shutdown>())) {
      checkpoint_due = false;
      TREEPO_RETURN_IF_ERROR(checkpoint());
    }
    if (const auto* tb = m->get_if<pr::TreeBatch>()) {
      if (static_cast<int64_t>(tb->step) != step) {
        spdlog::warn("{}: TreeBatch for step {} while at step {}", name, tb->step, step);
      }
      Result<LearnerBatch> batch = BuildLearnerBatch(tb->trees, *estimator, max_seq_len);
      Result<TrainStepMetrics> metrics =
          batch.ok() ? trainer->Step(*batch) : Result<TrainStepMetrics>(batch.status());
      if (!metrics.ok()) {
        spdlog::error("{}: step {} failed: {}", name, tb->step, metrics.status().ToString());
        TREEPO_RETURN_IF_ERROR(conn.Send(pr::ErrorReply{
            metrics.status().code(), metrics.status().message(), pr::MessageType::kTreeBatch}));
        continue;
      }
      step = static_cast<int64_t>(tb->step) + 1;
      TREEPO_RETURN_IF_ERROR(publisher.Publish(trainer->version(), trainer->weights().data));
      pr::TrainDone done{tb->step, trainer->version(), ToMetrics(*metrics)};
      done.metrics.push_back(
          {"truncated_sequences", static_cast<double>(batch->truncated_sequences)});
      done.metrics.push_back({"raw_advantage_mean", batch->raw_advantage_mean});
      TREEPO_RETURN_IF_ERROR(conn.Send(std::move(done)));
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

#include "worker/service/worker_service.h"

#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "common/utf8.h"
#include "protocols/codec.h"
#include "protocols/curve_keys.h"
#include "protocols/model_fingerprint.h"
#include "protocols/transport.h"
#include "worker/service/weight_intake.h"

namespace treepo::worker {
namespace {

namespace pr = protocols;

int64_t NowMs() { return SteadyNowMs(); }

SegmentRequest ToRequest(const pr::SegmentTask& t) {
  SegmentRequest r;
  r.task = t.task_id;
  if (t.parent_node_id.value() != 0) r.parent = t.parent_node_id;
  r.prefix_tokens = t.prefix_tokens;
  r.children = t.child_node_ids;
  r.seeds = t.child_seeds;
  r.max_new_tokens = static_cast<int>(t.max_new_tokens);
  r.sampling.temperature = t.temperature;
  r.sampling.top_p = t.top_p;
  r.sampling.top_k = static_cast<int>(t.top_k);
  r.sampling.stop_at_eos = t.stop_at_eos;
  r.weight_version = t.weight_version;
  return r;
}

pr::SegmentResult ToWire(const SegmentResult& r, WorkerId worker) {
  pr::SegmentResult out;
  out.task_id = r.task;
  out.worker_id = worker;
  out.prefilled_tokens = static_cast<uint32_t>(r.prefilled_tokens);
  for (const ChildResult& c : r.children) {
    pr::ChildResult w;
    w.node_id = c.node;
    w.tokens = c.tokens;
    w.logprobs = c.logprobs;
    w.finish =
        c.finish == FinishReason::kEos ? pr::SegmentFinish::kEos : pr::SegmentFinish::kLength;
    w.weight_version = r.weight_version;
    out.children.push_back(std::move(w));
    out.queue_ms = std::max(out.queue_ms, c.timings.queue_ms);
    out.prefill_ms = std::max(out.prefill_ms, c.timings.prefill_ms);
    out.decode_ms = std::max(out.decode_ms, c.timings.decode_ms);
  }
  return out;
}

// The worker's actor: all state of one RunWorker call.
class WorkerLoop {
 public:
  WorkerLoop(const WorkerOptions& o, std::string name, std::atomic<bool>* stop)
      : o_(o), name_(std::move(name)), stop_(stop) {}

  Status Run() {
    TREEPO_ASSIGN_OR_RETURN(model::ModelWeights loaded, model::LoadModel(o_.model_path));
    weights_ = std::make_shared<const model::ModelWeights>(std::move(loaded));
    TREEPO_RETURN_IF_ERROR(model::CheckKvPoolFitsMemory(weights_->config, o_.engine.kv.num_pages,
                                                        o_.engine.kv.page_size));
    TREEPO_ASSIGN_OR_RETURN(engine_, Engine::Create(weights_, WeightVersion(0), o_.engine));
    pr::DealerOptions dopt;
    dopt.identity = name_ + "#" + std::to_string(NowMs() % 1000000);
    TREEPO_ASSIGN_OR_RETURN(dopt.curve, pr::ResolveClientKeys(o_.keys, o_.scheduler_endpoint));
    TREEPO_ASSIGN_OR_RETURN(pr::Dealer dealer,
                            pr::Dealer::Connect(ctx_, o_.scheduler_endpoint, dopt));
    dealer_.emplace(std::move(dealer));
    TREEPO_RETURN_IF_ERROR(Register());
    return Serve();
  }

 private:
  bool Stopped() const { return stop_ != nullptr && stop_->load(); }

  Status Send(pr::Payload payload) {
    pr::Message m;
    m.sender = id_.value();
    m.epoch = epoch_;
    m.payload = std::move(payload);
    const std::vector<uint8_t> frame = pr::Encode(m);
    // A full queue means the scheduler is not reading: wait for room rather than lose results.
    for (int attempt = 0;; ++attempt) {
      Status st = dealer_->Send(frame);
      if (st.code() != StatusCode::kResourceExhausted || attempt > 1000 || Stopped()) return st;
      (void)dealer_->Poll(1);
    }
  }

  Status Register() {
    pr::RegisterWorker reg;
    reg.worker_name = name_;
    reg.threads = static_cast<uint32_t>(std::max(1, o_.engine.blas_threads));
    reg.page_capacity = static_cast<uint32_t>(o_.engine.kv.num_pages);
    reg.page_size = static_cast<uint32_t>(o_.engine.kv.page_size);
    reg.model_fingerprint = pr::ModelFingerprint(weights_->config);
    // One id per registration attempt: its resends are answered with the same ack.
    reg.registration_id = std::random_device{}() | (uint64_t{std::random_device{}()} << 32) | 1;
    const int64_t deadline = NowMs() + o_.scheduler_timeout_ms;
    while (!Stopped()) {
      TREEPO_RETURN_IF_ERROR(Send(reg));
      const int64_t retry_at = std::min(deadline, NowMs() + o_.register_retry_ms);
      while (NowMs() < retry_at && !Stopped()) {
        TREEPO_ASSIGN_OR_RETURN(auto frame, dealer_->Recv(static_cast<int>(retry_at - NowMs())));
        if (!frame) continue;
        Result<pr::Message> m = pr::Decode(*frame);
        if (!m.ok()) {
          spdlog::warn("{}: dropping bad frame while registering: {}", name_,
                       m.status().ToString());
          continue;
        }
        if (const auto* err = m->get_if<pr::ErrorReply>();
            err != nullptr && err->code == StatusCode::kInvalidArgument &&
            err->about == pr::MessageType::kRegisterWorker) {
          return InvalidArgument("the scheduler refused this worker: " + err->message);
        }
        if (const auto* ack = m->get_if<pr::RegisterAck>()) {
          id_ = WorkerId(ack->assigned_id);
          epoch_ = ack->epoch;
          heartbeat_ms_ = o_.heartbeat_interval_ms > 0
                              ? o_.heartbeat_interval_ms
                              : static_cast<int>(ack->heartbeat_interval_ms);
          spdlog::info("{}: registered as worker {} epoch {} (heartbeat {} ms)", name_, id_.value(),
                       epoch_, heartbeat_ms_);
          last_heard_ms_ = NowMs();
          return OkStatus();
        }
        spdlog::warn("{}: ignoring {} before registration", name_, pr::MessageTypeName(m->type()));
      }
      if (NowMs() >= deadline) {
        return Unavailable("no RegisterAck from " + o_.scheduler_endpoint + " within " +
                           std::to_string(o_.scheduler_timeout_ms) + " ms");
      }
    }
    return OkStatus();
  }

  Status Serve() {
    int64_t next_heartbeat = NowMs();
    while (!Stopped() && !shutdown_) {
      const int64_t now = NowMs();
      if (now >= next_heartbeat) {
        TREEPO_RETURN_IF_ERROR(SendHeartbeat());
        next_heartbeat = now + heartbeat_ms_;
      }
      if (now - last_heard_ms_ > o_.scheduler_timeout_ms) {
        return Unavailable("scheduler silent for " + std::to_string(now - last_heard_ms_) + " ms");
      }
      const int timeout =
          engine_->Idle() ? static_cast<int>(std::max<int64_t>(0, next_heartbeat - NowMs())) : 0;
      TREEPO_ASSIGN_OR_RETURN(pr::PollResult polled, dealer_->Poll(timeout));
      if (polled.readable) TREEPO_RETURN_IF_ERROR(DrainSocket());
      if (!engine_->Idle()) TREEPO_RETURN_IF_ERROR(SendResults(engine_->Step()));
      TREEPO_RETURN_IF_ERROR(MaybeSwapWeights());
    }
    if (shutdown_) {
      TREEPO_RETURN_IF_ERROR(SendResults(engine_->RunUntilIdle()));
      spdlog::info("{}: shut down after draining", name_);
    }
    return OkStatus();
  }

  Status DrainSocket() {
    while (true) {
      TREEPO_ASSIGN_OR_RETURN(auto frame, dealer_->Recv(0));
      if (!frame) return OkStatus();
      last_heard_ms_ = NowMs();
      Result<pr::Message> m = pr::Decode(*frame);
      if (!m.ok()) {
        // Logged with a bound: the 1st, 10th, 100th, ... bad frame.
        if (++bad_frames_ == 1 || bad_frames_ == 10 || bad_frames_ % 100 == 0) {
          spdlog::warn("{}: dropping bad frame ({} so far): {}", name_, bad_frames_,
                       m.status().ToString());
        }
        continue;
      }
      TREEPO_RETURN_IF_ERROR(Handle(*m));
    }
  }

  Status Handle(const pr::Message& m) {
    if (const auto* batch = m.get_if<pr::SegmentTaskBatch>()) {
      if (o_.debug_drop_tasks) {
        spdlog::warn("{}: dropping {} tasks unanswered (--debug-drop-tasks)", name_,
                     batch->tasks.size());
        return OkStatus();
      }
      for (const pr::SegmentTask& t : batch->tasks) TREEPO_RETURN_IF_ERROR(Accept(t));
    } else if (const auto* rel = m.get_if<pr::ReleaseNodes>()) {
      for (NodeId n : rel->node_ids) {
        const Status st = engine_->Release(n);
        if (!st.ok()) spdlog::debug("{}: release {}: {}", name_, n.value(), st.ToString());
      }
    } else if (const auto* notice = m.get_if<pr::WeightVersionNotice>()) {
      const Status st = intake_.Begin(*notice, *weights_);
      if (!st.ok()) return Send(pr::WeightAck{notice->version, false, st.message()});
    } else if (const auto* chunk = m.get_if<pr::WeightChunk>()) {
      const Status st = intake_.Add(*chunk);
      if (!st.ok()) return Send(pr::WeightAck{chunk->version, false, st.message()});
      if (intake_.Complete()) {
        const WeightVersion v = chunk->version;
        Result<std::shared_ptr<const model::ModelWeights>> w = intake_.Finish(*weights_);
        if (!w.ok()) return Send(pr::WeightAck{v, false, w.status().message()});
        pending_weights_ = std::move(*w);
        pending_version_ = v;
      }
    } else if (const auto* sd = m.get_if<pr::Shutdown>()) {
      spdlog::info("{}: shutdown requested ({})", name_, sd->reason);
      shutdown_ = true;
    } else if (const auto* err = m.get_if<pr::ErrorReply>()) {
      if (err->code == StatusCode::kFailedPrecondition) return Reregister(err->message);
      spdlog::warn("{}: scheduler refused {}: {}", name_, pr::MessageTypeName(err->about),
                   err->message);
    } else if (const auto* ack = m.get_if<pr::RegisterAck>();
               ack != nullptr && ack->assigned_id == id_.value() && ack->epoch == epoch_) {
      // The answer to a resend of the registration we hold: nothing to do.
    } else if (m.get_if<pr::Heartbeat>() == nullptr) {
      spdlog::warn("{}: unexpected {} from the scheduler", name_, pr::MessageTypeName(m.type()));
    }
    return OkStatus();
  }

  // The scheduler declared this worker dead (it went silent past the heartbeat timeout: a
  // stall, a paused process, a network cut) and re-dispatched its tasks; messages of the old
  // registration are fenced. Drop every sequence and KV page of the old registration (their
  // results would be refused) and join again as a new worker, keeping the installed weights.
  Status Reregister(const std::string& why) {
    spdlog::warn(
        "{}: the scheduler fenced worker {} epoch {} ({}); dropping its state and "
        "registering again",
        name_, id_.value(), epoch_, why);
    const WeightVersion version = engine_->Load().weight_version;
    engine_.reset();  // frees the KV pool before the new one is allocated
    TREEPO_ASSIGN_OR_RETURN(engine_, Engine::Create(weights_, version, o_.engine));
    pending_weights_.reset();
    intake_ = WeightIntake();
    // Replies to messages sent under the old registration arrive before the RegisterAck
    // (the scheduler answers one peer in order), so Register() consumes and ignores them.
    return Register();
  }

  Status Accept(const pr::SegmentTask& t) {
    Status st = pending_weights_ ? Unavailable("weight swap pending") : OkStatus();
    if (st.ok()) st = engine_->Submit(ToRequest(t));
    if (st.ok()) return OkStatus();
    return Send(pr::TaskRejected{t.task_id, st.code(), st.message()});
  }

  Status SendResults(const std::vector<SegmentResult>& done) {
    if (done.empty()) return OkStatus();
    pr::SegmentResultBatch batch;
    for (const SegmentResult& r : done) {
      for (const ChildResult& c : r.children) decoded_total_ += c.tokens.size();
      batch.results.push_back(ToWire(r, id_));
    }
    return Send(std::move(batch));
  }

  Status SendHeartbeat() {
    const EngineLoad load = engine_->Load();
    pr::Heartbeat hb;
    hb.worker_id = id_;
    hb.epoch = epoch_;
    hb.running_sequences = static_cast<uint32_t>(load.running_sequences);
    hb.queued_tokens = static_cast<uint64_t>(load.queued_prefill_tokens);
    hb.free_pages = static_cast<uint32_t>(load.pages.free);
    hb.used_pages = static_cast<uint32_t>(load.pages.used);
    hb.decoded_tokens_total = decoded_total_;
    hb.weight_version = load.weight_version;
    return Send(hb);
  }

  // Installs completed weights once no segment is in flight (never mid-segment).
  Status MaybeSwapWeights() {
    if (!pending_weights_ || !engine_->Idle()) return OkStatus();
    const Status st = engine_->SwapWeights(pending_weights_, pending_version_);
    if (st.ok()) weights_ = pending_weights_;
    pending_weights_.reset();
    spdlog::info("{}: weight version {}: {}", name_, pending_version_.value(), st.ToString());
    return Send(pr::WeightAck{pending_version_, st.ok(), st.ok() ? "" : st.message()});
  }

  const WorkerOptions& o_;
  const std::string name_;
  std::atomic<bool>* stop_;
  pr::Context ctx_;
  std::optional<pr::Dealer> dealer_;
  std::shared_ptr<const model::ModelWeights> weights_;
  std::unique_ptr<Engine> engine_;
  WeightIntake intake_;
  std::shared_ptr<const model::ModelWeights> pending_weights_;
  WeightVersion pending_version_;
  WorkerId id_;
  uint64_t epoch_ = 0;
  int heartbeat_ms_ = 1000;
  int64_t last_heard_ms_ = 0;
  uint64_t decoded_total_ = 0;
  int64_t bad_frames_ = 0;
  bool shutdown_ = false;
};

}  // namespace

Status WorkerOptions::Validate() const {
  if (scheduler_endpoint.empty()) return InvalidArgument("worker: scheduler endpoint is empty");
  if (model_path.empty()) return InvalidArgument("worker: model path is empty");
  if (heartbeat_interval_ms < 0) return InvalidArgument("worker: heartbeat_interval_ms < 0");
  if (scheduler_timeout_ms < 1) return InvalidArgument("worker: scheduler_timeout_ms < 1");
  if (register_retry_ms < 1) return InvalidArgument("worker: register_retry_ms < 1");
  if (!IsValidUtf8(name)) return InvalidArgument("worker: name is not valid UTF-8");
  return engine.Validate();
}

Status RunWorker(const WorkerOptions& options, std::atomic<bool>* stop) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  WorkerLoop loop(
      options, options.name.empty() ? "worker-" + std::to_string(::getpid()) : options.name, stop);
  return loop.Run();
}

}  // namespace treepo::worker

#include "worker/service/worker_service.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/compute/decoder_backend.h"
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
  WorkerLoop(const WorkerOptions& o, std::string name, std::atomic<bool>* stop,
             std::atomic<bool>* stop_now)
      : o_(o), name_(std::move(name)), stop_(stop), stop_now_(stop_now) {}

  Status Run() {
    TREEPO_ASSIGN_OR_RETURN(model::ModelWeights loaded,
                            model::LoadModel(o_.model_path, /*keep_16bit=*/true));
    weights_ = std::make_shared<const model::ModelWeights>(std::move(loaded));
    TREEPO_ASSIGN_OR_RETURN(const std::string backend, compute::ResolveBackend(o_.engine.backend));
    if (backend == "cpu") {  // a device pool is checked by the device's allocator
      TREEPO_RETURN_IF_ERROR(model::CheckKvPoolFitsMemory(weights_->config, o_.engine.kv.num_pages,
                                                          o_.engine.kv.page_size));
    }
    TREEPO_ASSIGN_OR_RETURN(engine_, Engine::Create(weights_, WeightVersion(0), o_.engine));
    spdlog::info("{}: {} backend, {} KV pages of {}", name_, engine_->backend(),
                 o_.engine.kv.num_pages, o_.engine.kv.page_size);
    pr::DealerOptions dopt;
    dopt.identity = name_ + "#" + std::to_string(NowMs() % 1000000);
    dopt.socket.linger_ms = 1000;  // the last Deregister reaches the scheduler
    TREEPO_ASSIGN_OR_RETURN(dopt.curve, pr::ResolveClientKeys(o_.keys, o_.scheduler_endpoint));
    TREEPO_ASSIGN_OR_RETURN(pr::Dealer dealer,
                            pr::Dealer::Connect(ctx_, o_.scheduler_endpoint, dopt));
    dealer_.emplace(std::move(dealer));
    // A loopback peer endpoint means nothing to workers on other hosts: with a remote scheduler
    // it takes part in migrations only when bound to an address the others can reach.
    const bool unreachable =
        pr::IsLoopbackEndpoint(o_.peer_bind) && !pr::IsLoopbackEndpoint(o_.scheduler_endpoint);
    if (unreachable && !o_.peer_bind.empty()) {
      spdlog::info("{}: scheduler is remote and --peer-bind {} is loopback: no KV migration", name_,
                   o_.peer_bind);
    } else if (!o_.peer_bind.empty() && !dopt.curve) {
      pr::RouterOptions ro;
      ro.socket.max_message_bytes = static_cast<int64_t>(codec_.max_frame_bytes) + 4096;
      TREEPO_ASSIGN_OR_RETURN(pr::Router peer, pr::Router::Bind(ctx_, o_.peer_bind, ro));
      peer_.emplace(std::move(peer));
      spdlog::info("{}: KV peer endpoint {}", name_, peer_->endpoint());
    } else if (!o_.peer_bind.empty()) {
      spdlog::info("{}: CURVE keys in use: this worker takes part in no KV migration", name_);
    }
    TREEPO_RETURN_IF_ERROR(Register(std::max(o_.scheduler_timeout_ms, o_.rejoin_timeout_ms)));
    if (Stopped()) return OkStatus();  // stopped before it was registered: nothing to drain
    return Serve();
  }

 private:
  bool Stopped() const { return (stop_ != nullptr && stop_->load()) || StoppedNow(); }
  bool StoppedNow() const { return stop_now_ != nullptr && stop_now_->load(); }

  Status Send(pr::Payload payload) {
    pr::Message m;
    m.sender = id_.value();
    m.epoch = epoch_;
    m.payload = std::move(payload);
    const std::vector<uint8_t> frame = pr::Encode(m);
    // A full queue means the scheduler is not reading: wait for room rather than lose results.
    for (int attempt = 0;; ++attempt) {
      Status st = dealer_->Send(frame);
      if (st.code() != StatusCode::kResourceExhausted || attempt > 1000 || StoppedNow()) return st;
      (void)dealer_->Poll(1);
    }
  }

  // Registers, resending RegisterWorker (backing off from register_retry_ms to 5 s) until a
  // RegisterAck comes or `timeout_ms` pass.
  Status Register(int timeout_ms) {
    pr::RegisterWorker reg;
    reg.worker_name = name_;
    reg.threads = static_cast<uint32_t>(std::max(1, o_.engine.blas_threads));
    reg.page_capacity = static_cast<uint32_t>(o_.engine.kv.num_pages);
    reg.page_size = static_cast<uint32_t>(o_.engine.kv.page_size);
    reg.model_fingerprint = pr::ModelFingerprint(weights_->config);
    if (peer_) reg.peer_endpoint = peer_->endpoint();
    reg.page_bytes = engine_->kv_cache().PageFloats() * sizeof(float);
    reg.weight_version = engine_->Load().weight_version;
    // One id per registration attempt: its resends are answered with the same ack.
    reg.registration_id = std::random_device{}() | (uint64_t{std::random_device{}()} << 32) | 1;
    const int64_t deadline = NowMs() + timeout_ms;
    int64_t retry_ms = o_.register_retry_ms;
    while (!Stopped()) {
      TREEPO_RETURN_IF_ERROR(Send(reg));
      const int64_t retry_at = std::min(deadline, NowMs() + retry_ms);
      retry_ms = std::min<int64_t>(std::max(o_.register_retry_ms, 5000), retry_ms * 2);
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
          batches_seen_ = 0;  // the scheduler counts the batches it sends per registration
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
                           std::to_string(timeout_ms) + " ms");
      }
    }
    return OkStatus();
  }

  Status Serve() {
    int64_t next_heartbeat = NowMs();
    int64_t drain_deadline = 0;
    while (!shutdown_) {
      if (fenced_out_) return OkStatus();
      if (StoppedNow()) return Leave("stopped at once");
      if (Stopped() && !draining_) {
        // Leave without losing anything: the scheduler gives no new tasks, lets the running
        // segments finish and moves the held KV away, then sends Shutdown.
        draining_ = true;
        drain_deadline = NowMs() + o_.drain_timeout_ms;
        spdlog::info("{}: leaving: draining (at most {} ms)", name_, o_.drain_timeout_ms);
        TREEPO_RETURN_IF_ERROR(Send(pr::Deregister{"stop signal", true}));
      }
      if (draining_ && NowMs() >= drain_deadline) {
        spdlog::warn("{}: not drained within {} ms: leaving anyway", name_, o_.drain_timeout_ms);
        return Leave("drain timed out");
      }
      const int64_t now = NowMs();
      if (now >= next_heartbeat) {
        TREEPO_RETURN_IF_ERROR(SendHeartbeat());
        next_heartbeat = now + heartbeat_ms_;
      }
      if (now - last_heard_ms_ > o_.scheduler_timeout_ms) {
        const std::string silent =
            "scheduler silent for " + std::to_string(now - last_heard_ms_) + " ms";
        if (draining_) {
          spdlog::warn("{}: {} while draining: leaving", name_, silent);
          return OkStatus();
        }
        if (o_.rejoin_timeout_ms <= 0) return Unavailable(silent);
        TREEPO_RETURN_IF_ERROR(Rejoin(silent));
        if (Stopped()) return OkStatus();
        next_heartbeat = NowMs();
        continue;
      }
      const int timeout =
          engine_->Idle() ? static_cast<int>(std::max<int64_t>(0, next_heartbeat - NowMs())) : 0;
      if (peer_) {
        TREEPO_ASSIGN_OR_RETURN(pr::PairPoll polled, pr::PollBoth(*dealer_, *peer_, timeout));
        if (polled.dealer) TREEPO_RETURN_IF_ERROR(DrainSocket());
        if (polled.router) TREEPO_RETURN_IF_ERROR(DrainPeers());
        ExpireTransfers();
      } else {
        TREEPO_ASSIGN_OR_RETURN(pr::PollResult polled, dealer_->Poll(timeout));
        if (polled.readable) TREEPO_RETURN_IF_ERROR(DrainSocket());
      }
      if (!engine_->Idle()) {
        TREEPO_RETURN_IF_ERROR(SendResults(engine_->Step()));
        if (o_.debug_step_sleep_ms > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(o_.debug_step_sleep_ms));
        }
      }
      TREEPO_RETURN_IF_ERROR(MaybeSwapWeights());
    }
    TREEPO_RETURN_IF_ERROR(SendResults(engine_->RunUntilIdle()));
    spdlog::info("{}: shut down after draining", name_);
    return Leave(draining_ ? "drained" : "shutdown");
  }

  // The last word: the scheduler forgets this worker at once (its in-flight tasks, if any,
  // go to others) instead of waiting for the heartbeat timeout.
  Status Leave(const std::string& why) {
    spdlog::info("{}: deregistering ({})", name_, why);
    return Send(pr::Deregister{why, false});
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
      ++batches_seen_;
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
    } else if (const auto* mig = m.get_if<pr::KvMigrate>()) {
      return mig->send ? SendKv(*mig) : ExpectKv(*mig);
    } else if (const auto* sd = m.get_if<pr::Shutdown>()) {
      spdlog::info("{}: shutdown requested ({})", name_, sd->reason);
      shutdown_ = true;
    } else if (const auto* err = m.get_if<pr::ErrorReply>()) {
      // NOT_FOUND to a message of this registration: the scheduler does not know this worker
      // (a new head on the same endpoint). Join it, or leave when leaving anyway.
      const bool unknown = err->code == StatusCode::kNotFound && id_.value() != 0 &&
                           err->about != pr::MessageType::kRegisterWorker;
      if ((err->code == StatusCode::kFailedPrecondition || unknown) && draining_) {
        // Declared dead while leaving: its tasks went elsewhere already; nothing left to do.
        spdlog::info("{}: fenced while draining ({}): leaving", name_, err->message);
        fenced_out_ = true;
        return OkStatus();
      }
      if (err->code == StatusCode::kFailedPrecondition || unknown) {
        return Reregister(err->message, /*new_head=*/unknown);
      }
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
  // `new_head`: the scheduler does not know this worker at all (another head on the endpoint).
  Status Reregister(const std::string& why, bool new_head) {
    spdlog::warn(
        "{}: the scheduler dropped worker {} epoch {} ({}); dropping its state and "
        "registering again",
        name_, id_.value(), epoch_, why);
    TREEPO_RETURN_IF_ERROR(DropState(new_head));
    // Replies to messages sent under the old registration arrive before the RegisterAck
    // (the scheduler answers one peer in order), so Register() consumes and ignores them.
    return Register(std::max(o_.scheduler_timeout_ms, o_.rejoin_timeout_ms));
  }

  // The scheduler went silent (its process died; a new one is expected on the same
  // endpoint): drop what belonged to the old registration and register again, backing off,
  // for up to rejoin_timeout_ms.
  Status Rejoin(const std::string& why) {
    spdlog::warn("{}: {}: registering again for up to {} ms", name_, why, o_.rejoin_timeout_ms);
    TREEPO_RETURN_IF_ERROR(DropState(/*new_head=*/true));
    return Register(o_.rejoin_timeout_ms);
  }

  // Drops every sequence and KV page, and any half-received weights; keeps the installed ones.
  // For a new head (`new_head`) their version is not claimed: its number is the old head's,
  // whose later versions a resumed run trains again (not bitwise alike everywhere), so the
  // worker registers on version 0, like one that just loaded its model, and the new head
  // sends it the version its tasks carry before it is given any.
  Status DropState(bool new_head) {
    const WeightVersion version = new_head ? WeightVersion(0) : engine_->Load().weight_version;
    engine_.reset();  // frees the KV pool before the new one is allocated
    incoming_.clear();
    early_.clear();
    early_bytes_ = 0;
    TREEPO_ASSIGN_OR_RETURN(engine_, Engine::Create(weights_, version, o_.engine));
    pending_weights_.reset();
    intake_ = WeightIntake();
    return OkStatus();
  }

  Status Accept(const pr::SegmentTask& t) {
    Status st = pending_weights_ ? Unavailable("weight swap pending") : OkStatus();
    if (st.ok()) st = engine_->Submit(ToRequest(t));
    if (st.ok()) return OkStatus();
    return Send(pr::TaskRejected{t.task_id, st.code(), st.message()});
  }

  // ---- KV migration (docs/placement.md) ----

  // Source side: export the nodes and send them to the destination in chunks.
  Status SendKv(const pr::KvMigrate& m) {
    Result<KvExport> kv = engine_->ExportNodes(m.node_ids);
    if (!kv.ok()) {
      return Send(
          pr::KvMigrated{m.transfer_id, false, "source: " + kv.status().message(), m.node_ids, 0});
    }
    Result<pr::Dealer*> to = PeerDealer(m.dest_endpoint);
    if (!to.ok()) {
      return Send(
          pr::KvMigrated{m.transfer_id, false, "source: " + to.status().message(), m.node_ids, 0});
    }
    const size_t page_floats = kv->data.size() / std::max(1, kv->n_pages);
    const size_t page_bytes = std::max<size_t>(1, page_floats * sizeof(float));
    const uint32_t per_chunk =
        static_cast<uint32_t>(std::max<size_t>(1, kKvChunkBytes / page_bytes));
    const uint32_t total = static_cast<uint32_t>(kv->n_pages);
    const uint32_t count = std::max<uint32_t>(1, (total + per_chunk - 1) / per_chunk);
    for (uint32_t i = 0; i < count; ++i) {
      pr::KvChunk c;
      c.transfer_id = m.transfer_id;
      c.source_worker = id_;
      c.index = i;
      c.count = count;
      if (i == 0) {
        for (const KvExport::Node& n : kv->nodes) {
          c.nodes.push_back(pr::KvNode{n.node, static_cast<uint32_t>(n.length), n.last_token,
                                       n.version, n.pages});
        }
      }
      c.page_begin = std::min(total, i * per_chunk);
      c.page_count = std::min(per_chunk, total - c.page_begin);
      c.total_pages = total;
      c.n_layers = static_cast<uint32_t>(kv->n_layers);
      c.page_size = static_cast<uint32_t>(kv->page_size);
      c.kv_dim = static_cast<uint32_t>(kv->kv_dim);
      const auto* begin = reinterpret_cast<const uint8_t*>(kv->data.data()) +
                          static_cast<size_t>(c.page_begin) * page_bytes;
      c.data.assign(begin, begin + static_cast<size_t>(c.page_count) * page_bytes);
      c.checksum = pr::Fnv1a64(c.data);
      pr::Message msg;
      msg.sender = id_.value();
      msg.epoch = epoch_;
      msg.payload = std::move(c);
      const Status st = (*to)->Send(pr::Encode(msg));
      if (!st.ok()) {
        return Send(pr::KvMigrated{m.transfer_id, false, "source: " + st.message(), m.node_ids, 0});
      }
    }
    spdlog::debug("{}: sent {} nodes ({} pages in {} chunks) of transfer {} to {}", name_,
                  kv->nodes.size(), total, count, m.transfer_id, m.dest_endpoint);
    return OkStatus();
  }

  // A Dealer to another worker's peer endpoint, made on first use.
  Result<pr::Dealer*> PeerDealer(const std::string& endpoint) {
    auto it = peer_dealers_.find(endpoint);
    if (it != peer_dealers_.end()) return &it->second;
    if (peer_dealers_.size() >= 64) peer_dealers_.clear();  // bounded: reconnect on demand
    pr::DealerOptions d;
    d.identity = name_ + "#kv" + std::to_string(id_.value());
    d.socket.send_timeout_ms = 2000;
    TREEPO_ASSIGN_OR_RETURN(pr::Dealer dealer, pr::Dealer::Connect(ctx_, endpoint, d));
    return &peer_dealers_.emplace(endpoint, std::move(dealer)).first->second;
  }

  // Destination side: a transfer the scheduler announced; chunks of any other are dropped.
  Status ExpectKv(const pr::KvMigrate& m) {
    Incoming in;
    in.nodes = m.node_ids;
    in.deadline_ms = NowMs() + kTransferTimeoutMs;
    incoming_[m.transfer_id] = std::move(in);
    // Chunks that came in before this order (the two sides hear the scheduler separately).
    auto early = early_.find(m.transfer_id);
    if (early == early_.end()) return OkStatus();
    std::vector<pr::KvChunk> chunks = std::move(early->second.chunks);
    early_bytes_ -= early->second.bytes;
    early_.erase(early);
    for (const pr::KvChunk& c : chunks) TREEPO_RETURN_IF_ERROR(TakeChunk(c));
    return OkStatus();
  }

  Status DrainPeers() {
    while (true) {
      TREEPO_ASSIGN_OR_RETURN(auto in, peer_->Recv(0));
      if (!in) return OkStatus();
      Result<pr::Message> m =
          in->malformed.ok() ? pr::Decode(in->frame, codec_) : Result<pr::Message>(in->malformed);
      const pr::KvChunk* chunk = m.ok() ? m->get_if<pr::KvChunk>() : nullptr;
      if (chunk == nullptr) {
        if (++bad_peer_frames_ == 1 || bad_peer_frames_ % 100 == 0) {
          spdlog::warn("{}: dropping bad frame on the KV peer socket ({} so far): {}", name_,
                       bad_peer_frames_, m.ok() ? "not a KvChunk" : m.status().ToString());
        }
        continue;
      }
      TREEPO_RETURN_IF_ERROR(TakeChunk(*chunk));
    }
  }

  Status TakeChunk(const pr::KvChunk& c) {
    auto it = incoming_.find(c.transfer_id);
    if (it == incoming_.end()) {
      // Kept a while (bounded) in case the scheduler's order is still on its way.
      if (early_bytes_ + c.data.size() > kEarlyBytes) {
        spdlog::debug("{}: chunk of unexpected transfer {} dropped", name_, c.transfer_id);
        return OkStatus();
      }
      Early& e = early_[c.transfer_id];
      if (e.chunks.empty()) e.deadline_ms = NowMs() + kEarlyTimeoutMs;
      e.bytes += c.data.size();
      early_bytes_ += c.data.size();
      e.chunks.push_back(c);
      return OkStatus();
    }
    Incoming& in = it->second;
    if (in.chunks_seen.empty()) {
      in.chunks_seen.assign(c.count, false);
      in.kv.n_pages = static_cast<int>(c.total_pages);
      in.kv.n_layers = static_cast<int>(c.n_layers);
      in.kv.page_size = static_cast<int>(c.page_size);
      in.kv.kv_dim = static_cast<int>(c.kv_dim);
      const KvCache& kv = engine_->kv_cache();
      if (in.kv.n_layers != kv.n_layers() || in.kv.page_size != kv.page_size() ||
          in.kv.kv_dim != kv.kv_dim() ||
          c.total_pages > static_cast<uint32_t>(kv.pool().num_pages())) {
        return FailTransfer(c.transfer_id, "destination: KV shape or size does not fit");
      }
      in.kv.data.assign(static_cast<size_t>(c.total_pages) * kv.PageFloats(), 0.0f);
    }
    if (c.count != in.chunks_seen.size() || c.total_pages != static_cast<uint32_t>(in.kv.n_pages) ||
        c.n_layers != static_cast<uint32_t>(in.kv.n_layers) || in.chunks_seen[c.index]) {
      return FailTransfer(c.transfer_id, "destination: inconsistent or repeated chunk");
    }
    in.chunks_seen[c.index] = true;
    ++in.chunks_in;
    const size_t page_floats = engine_->kv_cache().PageFloats();
    std::memcpy(in.kv.data.data() + static_cast<size_t>(c.page_begin) * page_floats, c.data.data(),
                c.data.size());
    in.bytes += c.data.size();
    for (const pr::KvNode& n : c.nodes) {
      in.kv.nodes.push_back(KvExport::Node{n.node_id, static_cast<int>(n.length), n.last_token,
                                           n.weight_version, n.pages});
    }
    if (in.chunks_in < in.chunks_seen.size()) return OkStatus();
    std::vector<NodeId> got;
    for (const KvExport::Node& n : in.kv.nodes) got.push_back(n.node);
    if (got != in.nodes)
      return FailTransfer(c.transfer_id, "destination: other nodes than ordered");
    const Status st = engine_->ImportNodes(in.kv);
    const uint64_t bytes = in.bytes;
    incoming_.erase(it);
    if (!st.ok())
      return Send(pr::KvMigrated{c.transfer_id, false, "destination: " + st.message(), got, bytes});
    spdlog::debug("{}: imported {} nodes ({} bytes) of transfer {}", name_, got.size(), bytes,
                  c.transfer_id);
    return Send(pr::KvMigrated{c.transfer_id, true, "", std::move(got), bytes});
  }

  Status FailTransfer(uint64_t transfer, const std::string& why) {
    auto it = incoming_.find(transfer);
    std::vector<NodeId> nodes;
    if (it != incoming_.end()) {
      nodes = it->second.nodes;
      incoming_.erase(it);
    }
    spdlog::warn("{}: transfer {} failed: {}", name_, transfer, why);
    return Send(pr::KvMigrated{transfer, false, why, std::move(nodes), 0});
  }

  // Transfers whose chunks stopped coming are dropped (the scheduler times them out too).
  void ExpireTransfers() {
    const int64_t now = NowMs();
    for (auto it = incoming_.begin(); it != incoming_.end();) {
      it = it->second.deadline_ms <= now ? incoming_.erase(it) : std::next(it);
    }
    for (auto it = early_.begin(); it != early_.end();) {
      if (it->second.deadline_ms > now) {
        ++it;
        continue;
      }
      early_bytes_ -= it->second.bytes;
      it = early_.erase(it);
    }
  }

  Status SendResults(const std::vector<SegmentResult>& done) {
    if (done.empty()) return OkStatus();
    pr::SegmentResultBatch batch;
    const PageStats pages = engine_->Load().pages;
    batch.free_pages = static_cast<uint32_t>(pages.free);
    batch.total_pages = static_cast<uint32_t>(pages.total);
    batch.batches_seen = batches_seen_;
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
    hb.total_pages = static_cast<uint32_t>(load.pages.total);
    hb.batches_seen = batches_seen_;
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

  // A transfer this worker is to receive.
  struct Incoming {
    std::vector<NodeId> nodes;  // as ordered
    int64_t deadline_ms = 0;
    std::vector<bool> chunks_seen;
    size_t chunks_in = 0;
    uint64_t bytes = 0;
    KvExport kv;
  };
  // Chunks of a transfer not announced yet.
  struct Early {
    std::vector<pr::KvChunk> chunks;
    size_t bytes = 0;
    int64_t deadline_ms = 0;
  };
  static constexpr size_t kKvChunkBytes = size_t{1} << 20;
  static constexpr size_t kEarlyBytes = size_t{64} << 20;
  static constexpr int64_t kEarlyTimeoutMs = 5000;
  static constexpr int64_t kTransferTimeoutMs = 60000;

  const WorkerOptions& o_;
  const std::string name_;
  std::atomic<bool>* stop_;
  std::atomic<bool>* stop_now_;
  pr::Context ctx_;
  std::optional<pr::Dealer> dealer_;
  std::optional<pr::Router> peer_;  // KV chunks from other workers
  std::map<std::string, pr::Dealer> peer_dealers_;
  std::map<uint64_t, Incoming> incoming_;
  std::map<uint64_t, Early> early_;
  size_t early_bytes_ = 0;
  pr::CodecOptions codec_;
  uint64_t batches_seen_ = 0;
  int64_t bad_peer_frames_ = 0;
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
  bool draining_ = false;
  bool fenced_out_ = false;
};

}  // namespace

Status WorkerOptions::Validate() const {
  if (scheduler_endpoint.empty()) return InvalidArgument("worker: scheduler endpoint is empty");
  if (model_path.empty()) return InvalidArgument("worker: model path is empty");
  if (heartbeat_interval_ms < 0) return InvalidArgument("worker: heartbeat_interval_ms < 0");
  if (scheduler_timeout_ms < 1) return InvalidArgument("worker: scheduler_timeout_ms < 1");
  if (register_retry_ms < 1) return InvalidArgument("worker: register_retry_ms < 1");
  if (rejoin_timeout_ms < 0) return InvalidArgument("worker: rejoin_timeout_ms < 0");
  if (drain_timeout_ms < 0) return InvalidArgument("worker: drain_timeout_ms < 0");
  if (debug_step_sleep_ms < 0) return InvalidArgument("worker: debug_step_sleep_ms < 0");
  if (!IsValidUtf8(name)) return InvalidArgument("worker: name is not valid UTF-8");
  return engine.Validate();
}

Status RunWorker(const WorkerOptions& options, std::atomic<bool>* stop,
                 std::atomic<bool>* stop_now) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  WorkerLoop loop(options,
                  options.name.empty() ? "worker-" + std::to_string(::getpid()) : options.name,
                  stop, stop_now);
  return loop.Run();
}

}  // namespace treepo::worker

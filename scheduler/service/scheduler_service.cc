#include "scheduler/service/scheduler_service.h"

#include <algorithm>
#include <utility>

#include "common/log.h"

namespace treepo::scheduler {

namespace pr = protocols;

Status SchedulerOptions::Validate() const {
  if (bind_endpoint.empty()) return InvalidArgument("scheduler: bind endpoint is empty");
  if (heartbeat_interval_ms < 1) return InvalidArgument("heartbeat_interval_ms must be >= 1");
  if (heartbeat_timeout_ms <= heartbeat_interval_ms) {
    return InvalidArgument("heartbeat_timeout_ms must exceed heartbeat_interval_ms");
  }
  if (max_task_attempts < 1) return InvalidArgument("max_task_attempts must be >= 1");
  TREEPO_RETURN_IF_ERROR(security.Validate());
  return dispatch.Validate();
}

SchedulerService::SchedulerService(const SchedulerOptions& options, std::unique_ptr<Clock> clock)
    : options_(options),
      clock_(std::move(clock)),
      registry_(clock_.get(), options.heartbeat_timeout_ms),
      dispatcher_(&registry_, options.dispatch) {
  dispatcher_.set_task_ids([this] { return NextTaskId(); });
}

SchedulerService::~SchedulerService() = default;

Result<std::unique_ptr<SchedulerService>> SchedulerService::Create(const SchedulerOptions& options,
                                                                   std::unique_ptr<Clock> clock) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  if (!clock) clock = std::make_unique<SteadyClock>();
  std::unique_ptr<SchedulerService> s(new SchedulerService(options, std::move(clock)));
  pr::RouterOptions ro;
  ro.socket.max_message_bytes = static_cast<int64_t>(options.codec.max_frame_bytes) + 4096;
  ro.socket.send_timeout_ms = 2000;  // a slow peer holds the loop briefly rather than lose tasks
  TREEPO_RETURN_IF_ERROR(ApplySchedulerSecurity(options.security, options.bind_endpoint, &ro));
  TREEPO_ASSIGN_OR_RETURN(pr::Router router,
                          pr::Router::Bind(s->context_, options.bind_endpoint, ro));
  s->router_.emplace(std::move(router));
  spdlog::info("scheduler listening on {}", s->router_->endpoint());
  return s;
}

const std::string& SchedulerService::endpoint() const { return router_->endpoint(); }

Status SchedulerService::Pump(int timeout_ms) {
  if (!fatal_.ok()) return fatal_;
  // Before receiving: the tasks the owner queued since the last turn (children of the last
  // results) show whether a draining worker's KV is still wanted.
  FinishDrains();
  // Wake in time to notice dead workers even when nothing arrives.
  const int wait = std::min(timeout_ms, options_.heartbeat_interval_ms);
  TREEPO_ASSIGN_OR_RETURN(auto first, router_->Recv(std::max(0, wait)));
  // Bounded per turn so that a flood cannot starve heartbeats and dispatch.
  int handled = 0;
  for (auto in = std::move(first); in;) {
    ++counters_.frames_in;
    HandleIncoming(*in);
    if (++handled >= 10000) break;
    TREEPO_ASSIGN_OR_RETURN(in, router_->Recv(0));
  }
  for (LearnerId id : registry_.ReapDeadLearners()) {
    const LearnerEntry& l = registry_.learners().at(id);
    const std::string why = "silent for more than " +
                            std::to_string(options_.heartbeat_timeout_ms) +
                            " ms (heartbeat_timeout_ms)";
    ++counters_.dead_learners;
    spdlog::warn("learner {} '{}' {}: declared dead", id.value(), pr::EscapeBytes(l.name), why);
    if (learner_handler_ != nullptr) learner_handler_->OnLearnerLost(l, why);
  }
  for (WorkerId id : registry_.ReapDead()) {
    spdlog::warn("worker {} missed heartbeats for {} ms: declared dead", id.value(),
                 options_.heartbeat_timeout_ms);
    OnWorkerDead(id);
  }
  ExpireLateTasks();
  if (liveness_probe_) {
    Status st = liveness_probe_(*this);
    if (!st.ok()) return st;
  }
  TREEPO_RETURN_IF_ERROR(Dispatch());
  if (loop_observer_ != nullptr) loop_observer_->OnLoopTurn(*this);
  return fatal_;
}

void SchedulerService::ExpireLateTasks() {
  const Expiry e = dispatcher_.ExpireLate(clock_->NowMs());
  for (const auto& [task, worker] : e.late) {
    ++counters_.late_tasks;
    ++counters_.redispatched_tasks;
    spdlog::warn("task {} missed its deadline on worker {}: re-dispatched", task.value(),
                 worker.value());
  }
  for (WorkerId w : e.fence) {
    ++counters_.fenced_workers;
    if (WorkerEntry* entry = registry_.Find(w)) entry->fenced = true;
    spdlog::warn("worker {} missed {} task deadlines in a row: fenced", w.value(),
                 options_.dispatch.max_missed_deadlines);
    OnWorkerDead(w);
  }
  if (e.hopeless && fatal_.ok()) {
    fatal_ =
        DeadlineExceeded("task " + std::to_string(e.hopeless->value()) + " missed its deadline " +
                         std::to_string(options_.dispatch.max_task_deadline_misses) +
                         " times (no worker answers it)");
  }
}

Status SchedulerService::WaitForWorkers(int count, int timeout_ms, const std::atomic<bool>* stop) {
  const int64_t deadline = clock_->NowMs() + timeout_ms;
  while (registry_.live_count() < count) {
    if (stop != nullptr && stop->load()) return Cancelled("stopped while waiting for workers");
    const int64_t left = deadline - clock_->NowMs();
    if (left <= 0) {
      return DeadlineExceeded("only " + std::to_string(registry_.live_count()) + " of " +
                              std::to_string(count) + " workers registered within " +
                              std::to_string(timeout_ms) + " ms");
    }
    TREEPO_RETURN_IF_ERROR(Pump(static_cast<int>(std::min<int64_t>(left, 100))));
  }
  return OkStatus();
}

void SchedulerService::Submit(protocols::SegmentTask task) {
  task.weight_version = weight_version_;
  dispatcher_.Enqueue(std::move(task));
}

void SchedulerService::Release(const std::vector<NodeId>& nodes) {
  std::map<WorkerId, pr::ReleaseNodes> by_worker;
  for (NodeId n : nodes) {
    for (WorkerId w : dispatcher_.holders().Remove(n)) by_worker[w].node_ids.push_back(n);
  }
  for (auto& [w, msg] : by_worker) {
    const WorkerEntry* e = registry_.Find(w);
    if (e != nullptr && e->alive) SendToWorker(w, std::move(msg)).IgnoreError();
  }
}

void SchedulerService::ReleaseQuery(QueryId query) {
  dispatcher_.ForgetQuery(query);
  for (auto& [w, nodes] : dispatcher_.holders().RemoveQuery(query)) {
    const WorkerEntry* e = registry_.Find(w);
    if (e != nullptr && e->alive) SendToWorker(w, pr::ReleaseNodes{std::move(nodes)}).IgnoreError();
  }
}

Status SchedulerService::SendToPeer(const std::string& peer, pr::Payload payload) {
  pr::Message m;
  m.payload = std::move(payload);
  const std::vector<uint8_t> frame = pr::Encode(m);
  return router_->Send(peer, frame);
}

Status SchedulerService::SendToWorker(WorkerId worker, pr::Payload payload) {
  const WorkerEntry* w = registry_.Find(worker);
  if (w == nullptr || !w->alive)
    return NotFound("no live worker " + std::to_string(worker.value()));
  Status st = SendToPeer(w->peer, std::move(payload));
  if (!st.ok()) spdlog::warn("send to worker {}: {}", worker.value(), st.ToString());
  return st;
}

Status SchedulerService::BroadcastToWorkers(const pr::Payload& payload) {
  Status first;
  for (WorkerId id : registry_.LiveWorkers()) {
    Status st = SendToWorker(id, payload);
    if (first.ok() && !st.ok()) first = st;
  }
  return first;
}

Status SchedulerService::SendToLearner(LearnerId learner, pr::Payload payload) {
  auto it = registry_.learners().find(learner);
  if (it == registry_.learners().end()) {
    return NotFound("no learner " + std::to_string(learner.value()));
  }
  return SendToPeer(it->second.peer, std::move(payload));
}

Status SchedulerService::ShutdownWorkers(const std::string& reason) {
  return BroadcastToWorkers(pr::Shutdown{reason});
}

void SchedulerService::ReplyError(const std::string& peer, const Status& status,
                                  pr::MessageType about) {
  pr::ErrorReply e;
  e.code = status.ok() ? StatusCode::kInternal : status.code();
  e.message = status.message().substr(0, 1024);
  e.about = about;
  // Best effort: the peer may be gone (kUnavailable) or not reading.
  SendToPeer(peer, e).IgnoreError();
}

void SchedulerService::Bad(const std::string& peer, const char* reason, const Status& status,
                           pr::MessageType about) {
  ++counters_.bad_frames;
  ++counters_.bad_by_reason[reason];
  constexpr size_t kMaxLoggedPeers = 4096;
  constexpr int64_t kLogEveryMs = 10000;
  if (bad_log_.size() >= kMaxLoggedPeers && !bad_log_.contains(peer)) bad_log_.clear();
  const int64_t now = clock_->NowMs();
  auto [it, first] = bad_log_.try_emplace(peer);
  PeerLogState& log = it->second;
  if (first || now - log.last_log_ms >= kLogEveryMs) {
    spdlog::warn("dropping bad frame from peer {} ({}): {}{}", pr::EscapeBytes(peer), reason,
                 status.ToString(),
                 log.suppressed > 0
                     ? " (" + std::to_string(log.suppressed) + " more from it not logged)"
                     : std::string());
    log.last_log_ms = now;
    log.suppressed = 0;
  } else {
    ++log.suppressed;
  }
  ReplyError(peer, status, about);
}

bool SchedulerService::HasRole(const pr::Router::Incoming& in, const char* role) const {
  return !options_.security.enabled() || in.user_id == role;
}

void SchedulerService::HandleIncoming(const pr::Router::Incoming& in) {
  const std::string& peer = in.peer;
  if (!in.malformed.ok()) {
    Bad(peer, "multipart", in.malformed, pr::MessageType::kUnknown);
    return;
  }
  Result<pr::Message> decoded = pr::Decode(in.frame, options_.codec);
  if (!decoded.ok()) {
    Bad(peer, "decode", decoded.status(), pr::MessageType::kUnknown);
    return;
  }
  const pr::Message& m = *decoded;
  if (const auto* reg = m.get_if<pr::RegisterWorker>()) return HandleRegisterWorker(in, *reg);
  if (const auto* reg = m.get_if<pr::RegisterLearner>()) return HandleRegisterLearner(in, *reg);
  if (registry_.learners().count(LearnerId(m.sender)) > 0) {
    if (!HasRole(in, kLearnerRole)) {
      Bad(peer, "role", InvalidArgument("this key may not speak for a learner"), m.type());
      return;
    }
    Result<const LearnerEntry*> l = registry_.AuthenticateLearner(peer, m.sender, m.epoch);
    if (!l.ok()) {
      ++counters_.stale_messages;
      Bad(peer, "stale", l.status(), m.type());
      return;
    }
    registry_.LearnerSeen(LearnerId(m.sender), m.get_if<pr::Heartbeat>() != nullptr);
    if (const auto* hb = m.get_if<pr::Heartbeat>()) {
      // A sign of life; the echo tells the learner this scheduler lives (it leaves when its
      // head is gone).
      SendToPeer(peer, *hb).IgnoreError();
      return;
    }
    if (learner_handler_ == nullptr) {
      Bad(peer, "unexpected_type", Unimplemented("this scheduler runs no RL loop"), m.type());
      return;
    }
    // What a learner may send: TrainDone, the weights it publishes, errors, Shutdown.
    if (m.get_if<pr::TrainDone>() == nullptr && m.get_if<pr::WeightVersionNotice>() == nullptr &&
        m.get_if<pr::WeightChunk>() == nullptr && m.get_if<pr::ErrorReply>() == nullptr &&
        m.get_if<pr::Shutdown>() == nullptr) {
      Bad(peer, "unexpected_type", InvalidArgument("a learner may not send this message"),
          m.type());
      return;
    }
    learner_handler_->OnLearnerMessage(**l, m);
    return;
  }
  if (options_.security.enabled() && in.user_id == kLearnerRole) {
    // A learner this scheduler does not know: one of the head this one replaced.
    Bad(peer, "unregistered",
        NotFound("no learner " + std::to_string(m.sender) + " is registered here"), m.type());
    return;
  }
  if (!HasRole(in, kWorkerRole)) {
    Bad(peer, "role", InvalidArgument("this key may not speak for a worker"), m.type());
    return;
  }
  Result<WorkerEntry*> w = registry_.Authenticate(peer, m.sender, m.epoch);
  if (!w.ok()) {
    ++counters_.stale_messages;
    Bad(peer, w.status().code() == StatusCode::kNotFound ? "unregistered" : "stale", w.status(),
        m.type());
    return;
  }
  HandleWorkerMessage(*w, m);
}

void SchedulerService::HandleRegisterWorker(const pr::Router::Incoming& in,
                                            const pr::RegisterWorker& reg) {
  const std::string& peer = in.peer;
  if (!HasRole(in, kWorkerRole)) {
    Bad(peer, "role",
        InvalidArgument("this key is not a worker key; the scheduler refuses it as a worker"),
        pr::MessageType::kRegisterWorker);
    return;
  }
  if (options_.expected_model_fingerprint != 0 &&
      reg.model_fingerprint != options_.expected_model_fingerprint) {
    Bad(peer, "fingerprint",
        InvalidArgument("worker '" + pr::EscapeBytes(reg.worker_name) +
                        "' serves another model (fingerprint " +
                        std::to_string(reg.model_fingerprint) + ", the scheduler expects " +
                        std::to_string(options_.expected_model_fingerprint) + ")"),
        pr::MessageType::kRegisterWorker);
    return;
  }
  const uint32_t interval = static_cast<uint32_t>(options_.heartbeat_interval_ms);
  // A resend of the registration that is live on this connection (the worker resends until it
  // hears an ack, and frames queue while the scheduler is not up yet) gets the same ack.
  for (WorkerId id : registry_.LiveWorkers()) {
    const WorkerEntry* e = registry_.Find(id);
    if (reg.registration_id != 0 && e->peer == peer && e->registration_id == reg.registration_id) {
      SendToPeer(peer, pr::RegisterAck{e->id.value(), e->epoch, interval, weight_version_})
          .IgnoreError();
      return;
    }
  }
  std::optional<WorkerId> replaced;
  const WorkerEntry& w = registry_.AddWorker(peer, reg, &replaced);
  if (replaced) OnWorkerDead(*replaced);
  spdlog::info("worker {} '{}' registered (epoch {}, {} pages of {})", w.id.value(),
               pr::EscapeBytes(w.name), w.epoch, w.page_capacity, w.page_size);
  Status st = SendToPeer(peer, pr::RegisterAck{w.id.value(), w.epoch, interval, weight_version_});
  // A worker that cannot be answered is reaped by the heartbeat timeout.
  if (!st.ok()) spdlog::warn("RegisterAck to worker {}: {}", w.id.value(), st.ToString());
  if (learner_handler_ != nullptr) learner_handler_->OnWorkerRegistered(w);
}

void SchedulerService::HandleRegisterLearner(const pr::Router::Incoming& in,
                                             const pr::RegisterLearner& reg) {
  const std::string& peer = in.peer;
  if (!HasRole(in, kLearnerRole)) {
    Bad(peer, "role",
        InvalidArgument("this key is not a learner key; the scheduler refuses it as a learner"),
        pr::MessageType::kRegisterLearner);
    return;
  }
  // The same connection asking again for the same rank (its RegisterAck was still on its way
  // when it resent): the same registration, acknowledged again, not a second learner that
  // would replace the first while the process goes on as the first.
  for (const auto& [id, l] : registry_.learners()) {
    if (l.alive && l.peer == peer && l.rank == reg.rank && l.world_size == reg.world_size &&
        l.name == reg.learner_name) {
      SendToPeer(peer, pr::RegisterAck{l.id.value(), l.epoch,
                                       static_cast<uint32_t>(options_.heartbeat_interval_ms),
                                       weight_version_})
          .IgnoreError();
      return;
    }
  }
  // One learner per rank: another one is refused while the first one's connection is up
  // (probed with a Heartbeat, which learners ignore; the Router knows a gone peer at once).
  // Data-parallel ranks must agree on the world size.
  for (const auto& [id, l] : registry_.learners()) {
    if (l.peer == peer || !l.alive) continue;  // the same connection again, or a dead one
    pr::Heartbeat hb;
    hb.worker_id = WorkerId(id.value());
    hb.epoch = l.epoch;
    pr::Message probe;
    probe.payload = hb;
    if (!router_->Send(l.peer, pr::Encode(probe)).ok()) continue;  // gone
    if (l.world_size != reg.world_size) {
      Bad(peer, "learner_world_size",
          InvalidArgument("learner '" + pr::EscapeBytes(reg.learner_name) + "' says world size " +
                          std::to_string(reg.world_size) + " but connected learner " +
                          std::to_string(id.value()) + " '" + pr::EscapeBytes(l.name) + "' says " +
                          std::to_string(l.world_size)),
          pr::MessageType::kRegisterLearner);
      return;
    }
    if (l.rank == reg.rank) {
      Bad(peer, "second_learner",
          AlreadyExists("learner " + std::to_string(id.value()) + " '" + pr::EscapeBytes(l.name) +
                        "' of rank " + std::to_string(l.rank) +
                        " is connected; a second learner of that rank is refused while it is "
                        "alive"),
          pr::MessageType::kRegisterLearner);
      return;
    }
  }
  const LearnerEntry& l = registry_.AddLearner(peer, reg);
  spdlog::info("learner {} '{}' registered (rank {}/{})", l.id.value(), pr::EscapeBytes(l.name),
               l.rank, l.world_size);
  Status st =
      SendToPeer(peer, pr::RegisterAck{l.id.value(), l.epoch,
                                       static_cast<uint32_t>(options_.heartbeat_interval_ms),
                                       weight_version_});
  if (!st.ok()) spdlog::warn("RegisterAck to learner {}: {}", l.id.value(), st.ToString());
  if (learner_handler_ != nullptr) learner_handler_->OnLearnerRegistered(l);
}

void SchedulerService::HandleWorkerMessage(WorkerEntry* worker, const pr::Message& m) {
  const WorkerId id = worker->id;
  if (const auto* hb = m.get_if<pr::Heartbeat>()) {
    registry_.RecordHeartbeat(worker, *hb);
    dispatcher_.OnPageReport(id, hb->total_pages, hb->free_pages, hb->batches_seen);
    // The echo tells the worker we are alive; a lost one is noticed by its timeout.
    SendToPeer(worker->peer, *hb).IgnoreError();
    return;
  }
  if (const auto* batch = m.get_if<pr::SegmentResultBatch>()) {
    for (const pr::SegmentResult& r : batch->results) {
      std::optional<InFlightTask> t =
          r.worker_id == id ? dispatcher_.Complete(r.task_id, id, &r) : std::nullopt;
      if (!t) {
        ++counters_.stale_messages;
        spdlog::debug("dropping result of task {} from worker {}: not in flight there",
                      r.task_id.value(), id.value());
        continue;
      }
      ++counters_.results;
      if (worker->first_result_ms < 0) {
        worker->first_result_ms = clock_->NowMs();
        spdlog::info("worker {} delivered its first results", id.value());
      }
      if (sink_ != nullptr) sink_->OnSegmentResult(*t, r);
    }
    dispatcher_.OnPageReport(id, batch->total_pages, batch->free_pages, batch->batches_seen);
    return;
  }
  if (const auto* moved = m.get_if<pr::KvMigrated>()) {
    if (!moved->ok) {
      spdlog::info("worker {}: KV transfer {} failed: {}", id.value(), moved->transfer_id,
                   moved->message);
    }
    dispatcher_.MigrationDone(moved->transfer_id, moved->ok, moved->bytes);
    return;
  }
  if (const auto* rej = m.get_if<pr::TaskRejected>()) {
    ++counters_.rejections;
    const Status why(rej->code, rej->message);
    if (rej->code != StatusCode::kResourceExhausted && rej->code != StatusCode::kUnavailable) {
      spdlog::warn("worker {} rejected task {}: {}", id.value(), rej->task_id.value(),
                   why.ToString());
    }
    if (dispatcher_.Reject(rej->task_id, id)) {
      // Only "try later" codes are worth retrying; anything else is a bug. Lack of pages never
      // fails the run (the task waits for room; a task that fits no worker at all is reported
      // by the dispatcher).
      const bool transient = rej->code == StatusCode::kResourceExhausted ||
                             rej->code == StatusCode::kUnavailable ||
                             rej->code == StatusCode::kFailedPrecondition;
      const bool out_of_pages = rej->code == StatusCode::kResourceExhausted;
      if (!transient ||
          (!out_of_pages && dispatcher_.Attempts(rej->task_id) >= options_.max_task_attempts)) {
        fatal_ = why.WithContext("task " + std::to_string(rej->task_id.value()) +
                                 " refused by worker " + std::to_string(id.value()));
      }
    }
    return;
  }
  if (const auto* d = m.get_if<pr::Deregister>()) return HandleDeregister(worker, *d);
  if (const auto* ack = m.get_if<pr::WeightAck>()) {
    if (ack->ok) worker->weight_version = ack->version;
    if (learner_handler_ != nullptr) learner_handler_->OnWorkerWeightAck(id, *ack);
    if (!ack->ok)
      spdlog::warn("worker {} refused weights {}: {}", id.value(), ack->version.value(),
                   ack->message);
    return;
  }
  if (const auto* err = m.get_if<pr::ErrorReply>()) {
    spdlog::warn("worker {} reports an error about {}: {}", id.value(),
                 pr::MessageTypeName(err->about), err->message);
    return;
  }
  Bad(worker->peer, "unexpected_type", InvalidArgument("a worker may not send this message"),
      m.type());
}

void SchedulerService::OnWorkerDead(WorkerId id) {
  ++counters_.dead_workers;
  registry_.MarkDead(id);
  const int stranded = dispatcher_.QueuedOnlyOn(id);
  const int n = dispatcher_.WorkerDied(id);
  counters_.redispatched_tasks += n;
  spdlog::warn(
      "worker {} gone: {} in-flight tasks requeued, {} queued tasks placed afresh, its KV "
      "forgotten",
      id.value(), n, stranded);
}

void SchedulerService::HandleDeregister(WorkerEntry* worker, const pr::Deregister& d) {
  const WorkerId id = worker->id;
  if (d.drain) {
    if (worker->draining) return;
    worker->draining = true;
    worker->draining_since_ms = clock_->NowMs();
    spdlog::info("worker {} '{}' is leaving ({}): draining, {} tasks in flight", id.value(),
                 pr::EscapeBytes(worker->name), pr::EscapeBytes(d.reason), worker->in_flight_tasks);
    return;
  }
  ++counters_.left_workers;
  worker->left = true;
  registry_.MarkDead(id);
  const int n = dispatcher_.WorkerDied(id);
  counters_.redispatched_tasks += n;
  spdlog::info("worker {} '{}' deregistered ({}): forgotten{}", id.value(),
               pr::EscapeBytes(worker->name), pr::EscapeBytes(d.reason),
               n > 0 ? ", " + std::to_string(n) + " in-flight tasks requeued" : std::string());
}

void SchedulerService::FinishDrains() {
  for (const auto& [id, w] : registry_.workers()) {
    if (!w.alive || !w.draining || w.drained || w.in_flight_tasks > 0) continue;
    if (dispatcher_.NeededForDrain(id)) continue;
    WorkerEntry* e = registry_.Find(id);
    e->drained = true;
    ++counters_.drained_workers;
    // What it still holds is not wanted by any queued task: forget it (a later task that
    // needs it is given the prefix to recompute).
    dispatcher_.WorkerDied(id);
    spdlog::info("worker {} '{}' drained in {} ms: told to go", id.value(), pr::EscapeBytes(w.name),
                 clock_->NowMs() - w.draining_since_ms);
    SendToWorker(id, pr::Shutdown{"drained"}).IgnoreError();
  }
}

int SchedulerService::LearnerGone(uint32_t rank, const std::string& why) {
  int n = 0;
  for (const auto& [id, l] : registry_.learners()) {
    if (l.rank != rank || !registry_.MarkLearnerDead(id)) continue;
    ++counters_.dead_learners;
    spdlog::warn("learner {} '{}' {}: declared dead", id.value(), pr::EscapeBytes(l.name), why);
    if (learner_handler_ != nullptr) learner_handler_->OnLearnerLost(l, why);
    ++n;
  }
  return n;
}

int SchedulerService::WorkerGone(const std::string& name) {
  int n = 0;
  for (WorkerId id : registry_.LiveWorkers()) {
    const WorkerEntry* w = registry_.Find(id);
    if (w == nullptr || w->name != name) continue;
    spdlog::warn("worker {} '{}': its process exited: declared dead", id.value(),
                 pr::EscapeBytes(name));
    OnWorkerDead(id);
    ++n;
  }
  return n;
}

Status SchedulerService::Dispatch() {
  for (auto& [w, nodes] : dispatcher_.TakeReleases()) {
    const WorkerEntry* e = registry_.Find(w);
    if (e != nullptr && e->alive) SendToWorker(w, pr::ReleaseNodes{std::move(nodes)}).IgnoreError();
  }
  for (auto& [w, batch] : dispatcher_.Assign()) {
    const size_t n = batch.tasks.size();
    Status st = SendToWorker(w, std::move(batch));
    // A send that failed is noticed by the heartbeat timeout: the tasks are requeued then.
    if (!st.ok()) spdlog::warn("could not send {} tasks to worker {}", n, w.value());
  }
  // Migrations: the destination hears first (it buffers early chunks anyway), then the source.
  for (const MigrationOrder& o : dispatcher_.TakeMigrations()) {
    const WorkerEntry* to = registry_.Find(o.to);
    Status st = to != nullptr && to->alive
                    ? SendToWorker(o.to, pr::KvMigrate{o.transfer_id, o.nodes, false, o.from, ""})
                    : NotFound("destination gone");
    if (st.ok()) {
      st = SendToWorker(o.from,
                        pr::KvMigrate{o.transfer_id, o.nodes, true, o.to, to->peer_endpoint});
    }
    if (!st.ok()) dispatcher_.MigrationDone(o.transfer_id, false, 0);
  }
  if (dispatcher_.hopeless() && fatal_.ok()) {
    fatal_ = ResourceExhausted(*dispatcher_.hopeless());
  }
  return OkStatus();
}

}  // namespace treepo::scheduler

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
  return dispatch.Validate();
}

SchedulerService::SchedulerService(const SchedulerOptions& options, std::unique_ptr<Clock> clock)
    : options_(options),
      clock_(std::move(clock)),
      registry_(clock_.get(), options.heartbeat_timeout_ms),
      dispatcher_(&registry_, options.dispatch) {}

SchedulerService::~SchedulerService() = default;

Result<std::unique_ptr<SchedulerService>> SchedulerService::Create(const SchedulerOptions& options,
                                                                   std::unique_ptr<Clock> clock) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  if (!clock) clock = std::make_unique<SteadyClock>();
  std::unique_ptr<SchedulerService> s(new SchedulerService(options, std::move(clock)));
  pr::RouterOptions ro;
  ro.socket.max_message_bytes = static_cast<int64_t>(options.codec.max_frame_bytes) + 4096;
  ro.socket.send_timeout_ms = 2000;  // a slow peer holds the loop briefly rather than lose tasks
  TREEPO_ASSIGN_OR_RETURN(pr::Router router,
                          pr::Router::Bind(s->context_, options.bind_endpoint, ro));
  s->router_.emplace(std::move(router));
  spdlog::info("scheduler listening on {}", s->router_->endpoint());
  return s;
}

const std::string& SchedulerService::endpoint() const { return router_->endpoint(); }

Status SchedulerService::Pump(int timeout_ms) {
  if (!fatal_.ok()) return fatal_;
  // Wake in time to notice dead workers even when nothing arrives.
  const int wait = std::min(timeout_ms, options_.heartbeat_interval_ms);
  TREEPO_ASSIGN_OR_RETURN(auto first, router_->Recv(std::max(0, wait)));
  for (auto in = std::move(first); in;) {
    ++counters_.frames_in;
    TREEPO_RETURN_IF_ERROR(HandleFrame(in->peer, in->frame));
    TREEPO_ASSIGN_OR_RETURN(in, router_->Recv(0));
  }
  for (WorkerId id : registry_.ReapDead()) {
    spdlog::warn("worker {} missed heartbeats for {} ms: declared dead", id.value(),
                 options_.heartbeat_timeout_ms);
    OnWorkerDead(id);
  }
  ExpireLateTasks();
  if (liveness_probe_) {
    Status st = liveness_probe_();
    if (!st.ok()) return st;
  }
  TREEPO_RETURN_IF_ERROR(Dispatch());
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

void SchedulerService::Submit(TaskSpec spec) {
  spec.task.weight_version = weight_version_;
  dispatcher_.Enqueue(std::move(spec));
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
  SendToPeer(peer, e).IgnoreError();
}

Status SchedulerService::HandleFrame(const std::string& peer, const std::vector<uint8_t>& frame) {
  Result<pr::Message> decoded = pr::Decode(frame, options_.codec);
  if (!decoded.ok()) {
    ++counters_.bad_frames;
    spdlog::warn("dropping bad frame ({} bytes) from peer '{}': {}", frame.size(), peer,
                 decoded.status().ToString());
    ReplyError(peer, decoded.status(), pr::MessageType::kUnknown);
    return OkStatus();
  }
  const pr::Message& m = *decoded;
  if (const auto* reg = m.get_if<pr::RegisterWorker>()) {
    std::optional<WorkerId> replaced;
    const WorkerEntry& w = registry_.AddWorker(peer, *reg, &replaced);
    if (replaced) OnWorkerDead(*replaced);
    spdlog::info("worker {} '{}' registered (epoch {}, {} pages of {})", w.id.value(), w.name,
                 w.epoch, w.page_capacity, w.page_size);
    const uint32_t interval = static_cast<uint32_t>(options_.heartbeat_interval_ms);
    return SendToPeer(peer, pr::RegisterAck{w.id.value(), w.epoch, interval, weight_version_});
  }
  if (const auto* reg = m.get_if<pr::RegisterLearner>()) {
    const LearnerEntry& l = registry_.AddLearner(peer, *reg);
    spdlog::info("learner {} '{}' registered (rank {}/{})", l.id.value(), l.name, l.rank,
                 l.world_size);
    TREEPO_RETURN_IF_ERROR(SendToPeer(
        peer,
        pr::RegisterAck{l.id.value(), l.epoch,
                        static_cast<uint32_t>(options_.heartbeat_interval_ms), weight_version_}));
    if (learner_handler_ != nullptr) learner_handler_->OnLearnerRegistered(l);
    return OkStatus();
  }
  if (registry_.learners().count(LearnerId(m.sender)) > 0) {
    Result<const LearnerEntry*> l = registry_.AuthenticateLearner(peer, m.sender, m.epoch);
    if (!l.ok()) {
      ++counters_.stale_messages;
      ReplyError(peer, l.status(), m.type());
      return OkStatus();
    }
    if (learner_handler_ == nullptr) {
      ReplyError(peer, Unimplemented("this scheduler runs no RL loop"), m.type());
      return OkStatus();
    }
    learner_handler_->OnLearnerMessage(**l, m);
    return OkStatus();
  }
  Result<WorkerEntry*> w = registry_.Authenticate(peer, m.sender, m.epoch);
  if (!w.ok()) {
    ++counters_.stale_messages;
    spdlog::warn("dropping {} from peer '{}': {}", pr::MessageTypeName(m.type()), peer,
                 w.status().ToString());
    ReplyError(peer, w.status(), m.type());
    return OkStatus();
  }
  return HandleWorkerMessage(*w, m);
}

Status SchedulerService::HandleWorkerMessage(WorkerEntry* worker, const pr::Message& m) {
  const WorkerId id = worker->id;
  if (const auto* hb = m.get_if<pr::Heartbeat>()) {
    registry_.RecordHeartbeat(worker, *hb);
    return SendToPeer(worker->peer, *hb);  // the echo tells the worker we are alive
  }
  if (const auto* batch = m.get_if<pr::SegmentResultBatch>()) {
    for (const pr::SegmentResult& r : batch->results) {
      std::optional<InFlightTask> t =
          r.worker_id == id ? dispatcher_.Complete(r.task_id, id) : std::nullopt;
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
    return OkStatus();
  }
  if (const auto* rej = m.get_if<pr::TaskRejected>()) {
    ++counters_.rejections;
    const Status why(rej->code, rej->message);
    if (rej->code != StatusCode::kResourceExhausted && rej->code != StatusCode::kUnavailable) {
      spdlog::warn("worker {} rejected task {}: {}", id.value(), rej->task_id.value(),
                   why.ToString());
    }
    if (dispatcher_.Reject(rej->task_id, id)) {
      // Only "try later" codes are worth retrying without limit; anything else is a bug.
      const bool transient = rej->code == StatusCode::kResourceExhausted ||
                             rej->code == StatusCode::kUnavailable ||
                             rej->code == StatusCode::kFailedPrecondition;
      if (!transient || dispatcher_.Attempts(rej->task_id) >= options_.max_task_attempts) {
        fatal_ = why.WithContext("task " + std::to_string(rej->task_id.value()) +
                                 " refused by worker " + std::to_string(id.value()));
      }
    }
    return OkStatus();
  }
  if (const auto* ack = m.get_if<pr::WeightAck>()) {
    if (learner_handler_ != nullptr) learner_handler_->OnWorkerWeightAck(id, *ack);
    if (!ack->ok)
      spdlog::warn("worker {} refused weights {}: {}", id.value(), ack->version.value(),
                   ack->message);
    return OkStatus();
  }
  if (const auto* err = m.get_if<pr::ErrorReply>()) {
    spdlog::warn("worker {} reports an error about {}: {}", id.value(),
                 pr::MessageTypeName(err->about), err->message);
    return OkStatus();
  }
  ReplyError(worker->peer, InvalidArgument("a worker may not send this message"), m.type());
  return OkStatus();
}

void SchedulerService::OnWorkerDead(WorkerId id) {
  ++counters_.dead_workers;
  registry_.MarkDead(id);
  const int n = dispatcher_.WorkerDied(id);
  counters_.redispatched_tasks += n;
  spdlog::warn("worker {} gone: {} in-flight tasks requeued, its KV forgotten", id.value(), n);
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
  return OkStatus();
}

}  // namespace treepo::scheduler

// The scheduler's service: one thread owns a ZeroMQ Router, the worker registry and the
// dispatcher, and turns frames into calls (docs/scheduler.md).
//
// The owner drives it by calling Pump() (one loop turn) from its thread, directly or through
// RunRollout (scheduler/service/rollout_runner.h). Workers register, heartbeat (echoed back),
// take SegmentTaskBatch and answer with SegmentResultBatch / TaskRejected. Accepted results go
// to the ResultSink; results of tasks not in flight on their sender, or from a fenced epoch,
// are dropped. Learners register and their traffic goes to the LearnerHandler (the RL loop).
// Anything a peer sends is data: a message that is not one frame, does not decode, comes from
// an unregistered or fenced sender, from a key of the wrong role, or is a type its role may
// not send, is counted per reason (Counters::bad_by_reason), logged once per peer with a rate
// limit (identities escaped), answered with an ErrorReply, and the loop keeps serving. Only
// a failure of the socket itself ends Pump with an error.
//
// Security (docs/security.md): with CURVE keys (SchedulerOptions::security) every connection
// carries a role from its key; a worker key cannot register or speak as a learner and the
// reverse. A second learner of a rank is refused while the first one's connection is up; data-
// parallel learners must agree on the world size. A worker
// whose model fingerprint differs from expected_model_fingerprint (when set) is refused.
//
// Thread-safety: none. Every call on the loop thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "protocols/codec.h"
#include "protocols/messages.h"
#include "protocols/transport.h"
#include "scheduler/service/dispatcher.h"
#include "scheduler/service/scheduler_security.h"
#include "scheduler/service/worker_registry.h"

namespace treepo::scheduler {

struct SchedulerOptions {
  std::string bind_endpoint = "tcp://127.0.0.1:*";  // "*" port: a free one (see endpoint())
  int heartbeat_interval_ms = 500;                  // told to workers in RegisterAck
  int heartbeat_timeout_ms = 5000;                  // a worker silent this long is dead
  int max_task_attempts = 50;  // dispatches of one task before the rollout fails
  DispatchLimits dispatch;
  protocols::CodecOptions codec;
  SchedulerSecurityOptions security;        // keys and roles (key, worker_keys, learner_keys)
  uint64_t expected_model_fingerprint = 0;  // != 0: workers must send this fingerprint

  Status Validate() const;
};

// Receives accepted segment results (the rollout runner). Called on the loop thread.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  // `task` was in flight on result.worker_id and is now complete.
  virtual void OnSegmentResult(const InFlightTask& task,
                               const protocols::SegmentResult& result) = 0;
};

// Learner-side traffic (the RL loop implements this). Called on the loop thread.
class LearnerHandler {
 public:
  virtual ~LearnerHandler() = default;
  virtual void OnLearnerRegistered(const LearnerEntry& learner) = 0;
  // Any message from a registered learner other than RegisterLearner (TrainDone,
  // WeightVersionNotice, WeightChunk, ...).
  virtual void OnLearnerMessage(const LearnerEntry& learner, const protocols::Message& message) = 0;
  virtual void OnWorkerWeightAck(WorkerId worker, const protocols::WeightAck& ack) = 0;
  // A worker registered (after its RegisterAck went out): a worker joining mid-run is sent the
  // current weights here.
  virtual void OnWorkerRegistered(const WorkerEntry& /*worker*/) {}
  // A learner was declared dead: silent past heartbeat_timeout_ms (it heartbeats), or its
  // process exited (LearnerGone). `why` says which.
  virtual void OnLearnerLost(const LearnerEntry& /*learner*/, const std::string& /*why*/) {}
};

class SchedulerService;
// Watches the service once per loop turn (the dashboard's snapshot recorder). Called on the
// loop thread at the end of every Pump(); it must not block and must not change the service.
class LoopObserver {
 public:
  virtual ~LoopObserver() = default;
  virtual void OnLoopTurn(const SchedulerService& service) = 0;
};

// The launcher's check of its child processes (SchedulerService::set_liveness_probe).
using LivenessProbe = std::function<Status(SchedulerService&)>;

class SchedulerService {
 public:
  // Binds the Router. `clock` null: the steady clock.
  static Result<std::unique_ptr<SchedulerService>> Create(const SchedulerOptions& options,
                                                          std::unique_ptr<Clock> clock = nullptr);
  ~SchedulerService();

  // The bound endpoint, port resolved ("tcp://127.0.0.1:40123").
  const std::string& endpoint() const;

  // One loop turn: waits up to timeout_ms for traffic, handles every waiting frame, declares
  // silent workers dead (their tasks go back to the queue), takes back tasks past their
  // deadline (fencing workers that miss max_missed_deadlines in a row), runs the liveness
  // probe, places queued tasks and sends one SegmentTaskBatch per worker. Errors are fatal
  // (socket failure, a task refused or late too often, the probe's error).
  Status Pump(int timeout_ms);
  // Pumps until `count` workers are live; kDeadlineExceeded after timeout_ms, kCancelled
  // when *stop becomes true (stop may be null).
  Status WaitForWorkers(int count, int timeout_ms, const std::atomic<bool>* stop);

  // A task id not used before in this service's life.
  TaskId NextTaskId() { return TaskId(next_task_id_++); }
  // Queues a task for dispatch (task ids from NextTaskId(); prefix_tokens: the parent's
  // whole token path, see Dispatcher).
  void Submit(protocols::SegmentTask task);
  // Tells every worker holding one of `nodes` to free it, and forgets them.
  void Release(const std::vector<NodeId>& nodes);
  // Frees every node of `query` still held anywhere.
  void ReleaseQuery(QueryId query);

  Status SendToWorker(WorkerId worker, protocols::Payload payload);
  // Sends to every live worker; the first error is returned after trying all.
  Status BroadcastToWorkers(const protocols::Payload& payload);
  Status SendToLearner(LearnerId learner, protocols::Payload payload);
  // Broadcasts Shutdown and pumps until every live worker's connection is quiet or
  // timeout_ms passes.
  Status ShutdownWorkers(const std::string& reason);

  // Declares dead now every live worker registered under `name`, as the heartbeat reaper does
  // after heartbeat_timeout_ms: its in-flight tasks are re-dispatched to the others and its
  // KV forgotten. For a launcher that saw the worker's process exit. Returns how many.
  int WorkerGone(const std::string& name);
  // The same for learners: every live learner of data-parallel rank `rank` is declared dead
  // now (LearnerHandler::OnLearnerLost); `why` goes to the log. Returns how many.
  int LearnerGone(uint32_t rank, const std::string& why);

  // Called by every Pump() before it dispatches (on the loop thread, so it must not block): the
  // launcher checks its child processes there and calls WorkerGone for a worker that exited.
  // An error it returns ends the Pump with that error. Empty: none.
  void set_liveness_probe(LivenessProbe probe) { liveness_probe_ = std::move(probe); }
  void set_result_sink(ResultSink* sink) { sink_ = sink; }
  // Null: none. The observer outlives its registration.
  void set_loop_observer(LoopObserver* observer) { loop_observer_ = observer; }
  void set_learner_handler(LearnerHandler* handler) { learner_handler_ = handler; }
  // The weight version stamped on tasks and told to registering workers.
  void set_weight_version(WeightVersion version) { weight_version_ = version; }
  WeightVersion weight_version() const { return weight_version_; }

  const WorkerRegistry& registry() const { return registry_; }
  const Dispatcher& dispatcher() const { return dispatcher_; }
  const SchedulerOptions& options() const { return options_; }
  int64_t NowMs() const { return clock_->NowMs(); }
  // Counters since creation.
  struct Counters {
    int64_t frames_in = 0;
    int64_t bad_frames = 0;  // every message dropped as bad, whatever the reason
    // Bad messages by reason: "multipart", "decode", "unregistered", "stale", "role",
    // "unexpected_type", "fingerprint", "second_learner" (a rank taken), "learner_world_size".
    std::map<std::string, int64_t> bad_by_reason;
    int64_t stale_messages = 0;
    int64_t results = 0;
    int64_t rejections = 0;
    int64_t dead_workers = 0;
    int64_t redispatched_tasks = 0;
    int64_t late_tasks = 0;       // tasks taken back past their deadline
    int64_t fenced_workers = 0;   // declared dead for missing max_missed_deadlines in a row
    int64_t drained_workers = 0;  // left by Deregister{drain}, told to go once not needed
    int64_t left_workers = 0;     // forgotten at once on Deregister (not counted as dead)
    int64_t dead_learners = 0;    // declared dead (silent or exited)
  };
  const Counters& counters() const { return counters_; }

 private:
  SchedulerService(const SchedulerOptions& options, std::unique_ptr<Clock> clock);

  void HandleIncoming(const protocols::Router::Incoming& in);
  void HandleRegisterWorker(const protocols::Router::Incoming& in,
                            const protocols::RegisterWorker& reg);
  void HandleRegisterLearner(const protocols::Router::Incoming& in,
                             const protocols::RegisterLearner& reg);
  void HandleWorkerMessage(WorkerEntry* worker, const protocols::Message& m);
  // The connection's key has role `role` (always true without CURVE).
  bool HasRole(const protocols::Router::Incoming& in, const char* role) const;
  // Counts a bad message under `reason`, logs it (rate-limited per peer) and answers it.
  void Bad(const std::string& peer, const char* reason, const Status& status,
           protocols::MessageType about);
  void ReplyError(const std::string& peer, const Status& status, protocols::MessageType about);
  Status SendToPeer(const std::string& peer, protocols::Payload payload);
  void OnWorkerDead(WorkerId id);
  // Draining workers that nothing needs any more are told to go (Shutdown).
  void FinishDrains();
  void HandleDeregister(WorkerEntry* worker, const protocols::Deregister& d);
  // Takes back tasks past their deadline, fences workers that miss too many.
  void ExpireLateTasks();
  Status Dispatch();

  SchedulerOptions options_;
  std::unique_ptr<Clock> clock_;
  protocols::Context context_;
  std::optional<protocols::Router> router_;
  WorkerRegistry registry_;
  Dispatcher dispatcher_;
  ResultSink* sink_ = nullptr;
  LearnerHandler* learner_handler_ = nullptr;
  LivenessProbe liveness_probe_;
  LoopObserver* loop_observer_ = nullptr;
  WeightVersion weight_version_;
  Status fatal_;
  uint64_t next_task_id_ = 1;
  Counters counters_;
  // Rate limit of bad-message logs: per peer, when it was last logged and how many were
  // not logged since. Bounded: cleared when it holds kMaxLoggedPeers peers.
  struct PeerLogState {
    int64_t last_log_ms = 0;
    int64_t suppressed = 0;
  };
  std::map<std::string, PeerLogState> bad_log_;
};

}  // namespace treepo::scheduler

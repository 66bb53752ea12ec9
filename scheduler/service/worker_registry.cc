#include "scheduler/service/worker_registry.h"

#include "common/clock.h"

namespace treepo::scheduler {

int64_t SteadyClock::NowMs() const { return SteadyNowMs(); }

WorkerRegistry::WorkerRegistry(const Clock* clock, int heartbeat_timeout_ms)
    : clock_(clock), heartbeat_timeout_ms_(heartbeat_timeout_ms) {}

const WorkerEntry& WorkerRegistry::AddWorker(const std::string& peer,
                                             const protocols::RegisterWorker& reg,
                                             std::optional<WorkerId>* replaced) {
  replaced->reset();
  for (auto& [id, w] : workers_) {
    if (w.alive && w.peer == peer) {
      MarkDead(id);
      *replaced = id;
    }
  }
  WorkerEntry e;
  e.id = WorkerId(next_id_++);
  e.peer = peer;
  e.name = reg.worker_name;
  e.weight_version = reg.weight_version;
  e.epoch = next_epoch_++;
  e.registration_id = reg.registration_id;
  e.page_capacity = reg.page_capacity;
  e.page_size = reg.page_size;
  e.peer_endpoint = reg.peer_endpoint;
  e.page_bytes = reg.page_bytes;
  e.registered_ms = e.last_seen_ms = clock_->NowMs();
  return workers_[e.id] = std::move(e);
}

const LearnerEntry& WorkerRegistry::AddLearner(const std::string& peer,
                                               const protocols::RegisterLearner& reg) {
  LearnerEntry e;
  e.id = LearnerId(next_id_++);
  e.peer = peer;
  e.name = reg.learner_name;
  e.rank = reg.rank;
  e.world_size = reg.world_size;
  e.epoch = next_epoch_++;
  e.last_seen_ms = clock_->NowMs();
  return learners_[e.id] = std::move(e);
}

Result<WorkerEntry*> WorkerRegistry::Authenticate(const std::string& peer, uint32_t sender,
                                                  uint64_t epoch) {
  auto it = workers_.find(WorkerId(sender));
  if (it == workers_.end()) return NotFound("unknown worker " + std::to_string(sender));
  WorkerEntry& w = it->second;
  if (!w.alive || w.epoch != epoch || w.peer != peer) {
    return FailedPrecondition("stale registration of worker " + std::to_string(sender) +
                              " (epoch " + std::to_string(epoch) + "); register again");
  }
  w.last_seen_ms = clock_->NowMs();
  return &w;
}

Result<const LearnerEntry*> WorkerRegistry::AuthenticateLearner(const std::string& peer,
                                                                uint32_t sender,
                                                                uint64_t epoch) const {
  auto it = learners_.find(LearnerId(sender));
  if (it == learners_.end()) return NotFound("unknown learner " + std::to_string(sender));
  if (!it->second.alive || it->second.epoch != epoch || it->second.peer != peer) {
    return FailedPrecondition("stale registration of learner " + std::to_string(sender));
  }
  return &it->second;
}

void WorkerRegistry::RecordHeartbeat(WorkerEntry* worker, const protocols::Heartbeat& heartbeat) {
  worker->load = heartbeat;
  worker->weight_version = heartbeat.weight_version;
}

void WorkerRegistry::AddInFlight(WorkerEntry* worker, int tasks, int sequences) {
  const int64_t now = clock_->NowMs();
  const bool was_busy = worker->in_flight_tasks > 0;
  worker->in_flight_tasks += tasks;
  worker->in_flight_sequences += sequences;
  const bool busy = worker->in_flight_tasks > 0;
  if (!was_busy && busy) worker->busy_since_ms = now;
  if (was_busy && !busy) {
    worker->busy_ms += static_cast<double>(now - worker->busy_since_ms);
    worker->busy_since_ms = -1;
  }
}

void WorkerRegistry::LearnerSeen(LearnerId id, bool heartbeat) {
  auto it = learners_.find(id);
  if (it == learners_.end()) return;
  it->second.last_seen_ms = clock_->NowMs();
  it->second.heartbeats = it->second.heartbeats || heartbeat;
}

std::vector<LearnerId> WorkerRegistry::ReapDeadLearners() {
  std::vector<LearnerId> dead;
  const int64_t now = clock_->NowMs();
  for (auto& [id, l] : learners_) {
    if (l.alive && l.heartbeats && now - l.last_seen_ms > heartbeat_timeout_ms_) {
      l.alive = false;
      dead.push_back(id);
    }
  }
  return dead;
}

bool WorkerRegistry::MarkLearnerDead(LearnerId id) {
  auto it = learners_.find(id);
  if (it == learners_.end() || !it->second.alive) return false;
  it->second.alive = false;
  return true;
}

std::vector<WorkerId> WorkerRegistry::ReapDead() {
  std::vector<WorkerId> dead;
  const int64_t now = clock_->NowMs();
  for (auto& [id, w] : workers_) {
    if (w.alive && now - w.last_seen_ms > heartbeat_timeout_ms_) dead.push_back(id);
  }
  for (WorkerId id : dead) MarkDead(id);
  return dead;
}

void WorkerRegistry::MarkDead(WorkerId id) {
  WorkerEntry* w = Find(id);
  if (w == nullptr || !w->alive) return;
  AddInFlight(w, -w->in_flight_tasks, -w->in_flight_sequences);
  w->alive = false;
}

WorkerEntry* WorkerRegistry::Find(WorkerId id) {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second;
}

const WorkerEntry* WorkerRegistry::Find(WorkerId id) const {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second;
}

std::vector<WorkerId> WorkerRegistry::LiveWorkers() const {
  std::vector<WorkerId> out;
  for (const auto& [id, w] : workers_) {
    if (w.alive) out.push_back(id);
  }
  return out;
}

int WorkerRegistry::live_count() const { return static_cast<int>(LiveWorkers().size()); }

double WorkerRegistry::BusyMs(WorkerId id) const {
  const WorkerEntry* w = Find(id);
  if (w == nullptr) return 0;
  double ms = w->busy_ms;
  if (w->busy_since_ms >= 0) ms += static_cast<double>(clock_->NowMs() - w->busy_since_ms);
  return ms;
}

}  // namespace treepo::scheduler

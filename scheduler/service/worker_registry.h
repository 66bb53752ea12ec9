// Who is connected to the scheduler: workers (with their epoch, heartbeats, load and in-flight
// counts) and learners. Time comes from an injectable Clock so that tests drive death by
// heartbeat timeout with a fake clock.
//
// Epochs fence registrations: every registration gets a fresh epoch (unique across the run),
// and a message whose (sender, epoch) is not that of a live registration is stale.
//
// Thread-safety: none; owned by the scheduler's loop thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "protocols/messages.h"

namespace treepo::scheduler {

// Milliseconds on a monotonic clock.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;
};

// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  int64_t NowMs() const override;
};

struct WorkerEntry {
  WorkerId id;
  std::string peer;  // Router identity
  std::string name;
  uint64_t epoch = 0;
  uint64_t registration_id = 0;  // RegisterWorker::registration_id of this registration
  uint32_t page_capacity = 0;
  uint32_t page_size = 0;
  std::string peer_endpoint;  // where other workers send it KV pages; empty: no migrations
  uint64_t page_bytes = 0;    // bytes of one KV page (0: unknown)
  bool alive = true;
  bool fenced = false;  // declared dead for missing task deadlines (not for silence)
  int64_t registered_ms = 0;
  int64_t last_seen_ms = 0;                  // any valid message counts as a sign of life
  std::optional<protocols::Heartbeat> load;  // latest heartbeat
  int in_flight_tasks = 0;                   // dispatched, no result or rejection yet
  int in_flight_sequences = 0;               // children of those tasks
  double busy_ms = 0;                        // wall time with in_flight_tasks > 0
  int64_t busy_since_ms = -1;                // start of the current busy interval, or -1
  int64_t first_result_ms = -1;              // when its first accepted result came, or -1
  // The weight version its engine runs (registration, heartbeats, WeightAck): it is given only
  // tasks of that version, so a worker that joins mid-run takes tasks once it has the current
  // weights.
  WeightVersion weight_version;
  // Leaving (Deregister{drain}): no new tasks; its running segments finish and its held KV
  // moves away; the scheduler then tells it to go (Shutdown).
  bool draining = false;
  int64_t draining_since_ms = -1;
  bool drained = false;  // told to go
  bool left = false;     // deregistered: dead at once, not by the heartbeat timeout

  // May be given new tasks of `version`.
  bool TakesTasks(WeightVersion version) const {
    return alive && !draining && weight_version == version;
  }
};

struct LearnerEntry {
  LearnerId id;
  std::string peer;
  std::string name;
  uint32_t rank = 0;
  uint32_t world_size = 1;
  uint64_t epoch = 0;
  int64_t last_seen_ms = 0;  // any valid message counts as a sign of life
  // It sends Heartbeats (the built-in learner does): only then does silence make it dead.
  bool heartbeats = false;
  bool alive = true;  // false once declared dead (silent, or its process exited)
};

class WorkerRegistry {
 public:
  // `clock` outlives the registry. A live worker unheard of for heartbeat_timeout_ms is dead.
  WorkerRegistry(const Clock* clock, int heartbeat_timeout_ms);

  // Registers a worker arriving on `peer`: a new id and epoch. A live worker already on that
  // peer (it restarted) is declared dead first and its id returned in *replaced.
  const WorkerEntry& AddWorker(const std::string& peer, const protocols::RegisterWorker& reg,
                               std::optional<WorkerId>* replaced);
  const LearnerEntry& AddLearner(const std::string& peer, const protocols::RegisterLearner& reg);

  // The live worker that sent (sender, epoch) from `peer`, marked as just seen.
  // kNotFound: no such worker; kFailedPrecondition: dead, a stale epoch or another peer.
  Result<WorkerEntry*> Authenticate(const std::string& peer, uint32_t sender, uint64_t epoch);
  // The learner with that id and epoch on `peer`; errors as Authenticate.
  Result<const LearnerEntry*> AuthenticateLearner(const std::string& peer, uint32_t sender,
                                                  uint64_t epoch) const;

  void RecordHeartbeat(WorkerEntry* worker, const protocols::Heartbeat& heartbeat);
  // A valid message from learner `id` (heartbeat: it was a Heartbeat).
  void LearnerSeen(LearnerId id, bool heartbeat);
  // Declares dead every live learner that heartbeats and was unheard of for longer than the
  // timeout; returns them.
  std::vector<LearnerId> ReapDeadLearners();
  // Declares learner `id` dead (its process exited); false when it was not live.
  bool MarkLearnerDead(LearnerId id);
  // Adjusts in-flight counts (and busy time) by a task of `sequences` children.
  void AddInFlight(WorkerEntry* worker, int tasks, int sequences);

  // Declares dead every live worker unheard of for longer than the timeout; returns them.
  std::vector<WorkerId> ReapDead();
  void MarkDead(WorkerId id);

  WorkerEntry* Find(WorkerId id);
  const WorkerEntry* Find(WorkerId id) const;
  std::vector<WorkerId> LiveWorkers() const;
  int live_count() const;
  // Busy time of `id` up to now, the current interval included.
  double BusyMs(WorkerId id) const;
  const std::map<WorkerId, WorkerEntry>& workers() const { return workers_; }
  const std::map<LearnerId, LearnerEntry>& learners() const { return learners_; }
  const Clock& clock() const { return *clock_; }

 private:
  const Clock* clock_;
  int heartbeat_timeout_ms_;
  uint32_t next_id_ = 1;
  uint64_t next_epoch_ = 1;
  std::map<WorkerId, WorkerEntry> workers_;
  std::map<LearnerId, LearnerEntry> learners_;
};

}  // namespace treepo::scheduler

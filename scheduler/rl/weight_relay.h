// The scheduler's side of weight sync and learner traffic: the LearnerHandler of the RL loop.
//
// The learner streams each version as WeightVersionNotice + WeightChunks; once a version is
// complete the relay keeps it (the newest only). SyncWorkers sends it to every live worker
// that has not been sent it (late joiners included); the loop calls it only between rollouts,
// because a worker's engine runs only tasks stamped with its own version. Workers' WeightAcks
// record the version each one runs. TrainDone messages wait here until the loop takes them.
// An ErrorReply from the learner or a refused WeightAck becomes error().
//
// Thread-safety: none; every call on the scheduler's loop thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "protocols/messages.h"
#include "scheduler/service/scheduler_service.h"

namespace treepo::scheduler {

class WeightRelay final : public LearnerHandler {
 public:
  // `service` outlives the relay.
  explicit WeightRelay(SchedulerService* service) : service_(service) {}

  void OnLearnerRegistered(const LearnerEntry& learner) override;
  void OnLearnerMessage(const LearnerEntry& learner, const protocols::Message& message) override;
  void OnWorkerWeightAck(WorkerId worker, const protocols::WeightAck& ack) override;

  // Sends the newest version to every live worker not yet sent it.
  void SyncWorkers();

  // The newest version fully received from the learner.
  std::optional<WeightVersion> newest() const;
  // True when every live worker (at least one) acknowledged a version >= `version`.
  bool AllWorkersAtLeast(WeightVersion version) const;
  // Lowest acknowledged version over live workers; nullopt if one has acknowledged none.
  std::optional<WeightVersion> MinWorkerVersion() const;
  // Acknowledged version per worker name ("name#id"), live workers only.
  std::map<std::string, uint64_t> WorkerVersions() const;

  std::optional<LearnerId> learner() const { return learner_; }
  // The TrainDone of `step`, removed, if it has arrived.
  std::optional<protocols::TrainDone> TakeTrainDone(uint64_t step);
  const Status& error() const { return error_; }

 private:
  struct Version {
    protocols::WeightVersionNotice notice;
    std::vector<protocols::WeightChunk> chunks;
  };
  void SendVersion(WorkerId worker);

  SchedulerService* service_;
  std::optional<LearnerId> learner_;
  std::optional<Version> assembling_;
  std::optional<Version> newest_;
  std::map<WorkerId, WeightVersion> acked_;
  std::map<WorkerId, WeightVersion> sent_;
  std::map<uint64_t, protocols::TrainDone> train_done_;
  Status error_;
};

}  // namespace treepo::scheduler

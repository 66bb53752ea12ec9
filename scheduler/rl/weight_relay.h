// The scheduler's side of weight sync and learner traffic: the LearnerHandler of the RL loop.
//
// The learner streams each version as WeightVersionNotice + WeightChunks; once a version is
// complete the relay keeps it (the newest only). SyncWorkers sends it to every live worker
// that has not been sent it (late joiners included); the loop calls it only between rollouts,
// because a worker's engine runs only tasks stamped with its own version. Workers' WeightAcks
// record the version each one runs. TrainDone messages wait here until the loop takes them.
// An ErrorReply from the learner or a refused WeightAck becomes error().
//
// Data-parallel learners (`learners` > 1) register one per rank: the relay keeps the newest
// connection of each rank; rank 0 alone publishes weights and sends TrainDone (those from
// other ranks are ignored), an ErrorReply from any rank is error(), and a learner that
// registers with another world size than `learners` too.
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
  explicit WeightRelay(SchedulerService* service, int learners = 1)
      : service_(service), expected_learners_(learners) {}

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

  // Rank 0's learner.
  std::optional<LearnerId> learner() const;
  // Every rank's learner, by rank; empty until all `learners` ranks registered.
  std::vector<LearnerId> learners() const;
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
  int expected_learners_;
  std::map<uint32_t, LearnerId> learners_;  // rank -> its newest registration
  std::optional<Version> assembling_;
  std::optional<Version> newest_;
  std::map<WorkerId, WeightVersion> acked_;
  std::map<WorkerId, WeightVersion> sent_;
  std::map<uint64_t, protocols::TrainDone> train_done_;
  Status error_;
};

}  // namespace treepo::scheduler

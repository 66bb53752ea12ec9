// The scheduler's side of weight sync and learner traffic: the LearnerHandler of the RL loop.
//
// The learner streams each version as WeightVersionNotice + WeightChunks; once a version is
// complete the relay keeps it: the newest, and the one the scheduler stamps on tasks now
// (service->weight_version(), older than the newest while an async rollout runs). SyncWorkers
// sends the newest to every live worker that has not been sent it; the loop calls it only
// between rollouts, because a worker's engine runs only tasks stamped with its own version. A
// worker that registers mid-run (elastic scaling, a fenced worker coming back) is sent the
// current version at once, so it takes the rollout's tasks as soon as it acknowledges them
// (the dispatcher gives a worker only tasks of the version it runs). Workers' WeightAcks
// record the version each one runs; a draining worker no longer counts. TrainDone messages wait
// here until the loop takes them. An ErrorReply from the learner or a refused WeightAck becomes
// error().
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
  void OnWorkerRegistered(const WorkerEntry& worker) override;
  void OnLearnerLost(const LearnerEntry& learner, const std::string& why) override;

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

  // Learner recovery (docs/rl-loop.md). Why a current learner was declared dead since the
  // last call, if one was.
  std::optional<std::string> TakeLearnerLost();
  // After a learner was restarted: forget the ranks' registrations and wait for new ones;
  // restart_version() is then the first version the new rank 0 publishes (its checkpoint's).
  void ExpectRestart();
  std::optional<WeightVersion> restart_version() const { return restart_version_; }

 private:
  struct Version {
    protocols::WeightVersionNotice notice;
    std::vector<protocols::WeightChunk> chunks;
  };
  void SendVersion(WorkerId worker, const Version& version);
  // The workers that count for the gates: live and not leaving.
  std::vector<WorkerId> ServingWorkers() const;
  // Keeps the newest version and the one tasks are stamped with now.
  void Prune();

  SchedulerService* service_;
  int expected_learners_;
  std::map<uint32_t, LearnerId> learners_;  // rank -> its newest registration
  std::optional<Version> assembling_;
  std::map<WeightVersion, Version> complete_;
  std::map<WorkerId, WeightVersion> acked_;
  std::map<WorkerId, WeightVersion> sent_;
  std::map<uint64_t, protocols::TrainDone> train_done_;
  std::optional<std::string> lost_;
  bool awaiting_restart_ = false;
  std::optional<WeightVersion> restart_version_;
  Status error_;
};

}  // namespace treepo::scheduler

// Ephemeral CURVE keys for a command that starts its own workers and learner on this machine
// (`curve = true` in `treepo rollout` and `treepo train`): a fresh pair each for the
// scheduler, the workers and the learner, the client files in a private temporary directory
// (0700) that lives as long as this object.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "protocols/transport.h"
#include "scheduler/service/scheduler_security.h"

namespace treepo::cluster {

class LocalCurveKeys {
 public:
  static Result<std::unique_ptr<LocalCurveKeys>> Create();
  // The pairs of a cluster's key directory (scheduler, worker, learner: NAME.key and NAME.pub,
  // made by `treepo keys --role NAME` or EnsureKeyDir); the directory is kept.
  static Result<std::unique_ptr<LocalCurveKeys>> FromDir(const std::string& dir);
  // Makes the missing pairs of `dir` (made 0700 if missing); existing ones are kept.
  static Status EnsureKeyDir(const std::string& dir);
  ~LocalCurveKeys();  // removes the directory made by Create
  LocalCurveKeys(const LocalCurveKeys&) = delete;
  LocalCurveKeys& operator=(const LocalCurveKeys&) = delete;

  // Makes the scheduler use these keys and admit exactly this worker and learner key.
  void ApplyTo(scheduler::SchedulerSecurityOptions* security) const;
  // Flags for `treepo worker` / `treepo learner`: --scheduler-key FILE --key FILE.
  std::vector<std::string> WorkerFlags() const;
  std::vector<std::string> LearnerFlags() const;

 private:
  LocalCurveKeys() = default;
  std::string dir_;
  bool owned_ = true;  // dir_ is removed with this object
  protocols::CurveKeyPair scheduler_, worker_, learner_;
};

}  // namespace treepo::cluster

#include "cluster/local_keys.h"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "protocols/curve_keys.h"

namespace treepo::cluster {

namespace fs = std::filesystem;

Result<std::unique_ptr<LocalCurveKeys>> LocalCurveKeys::Create() {
  std::unique_ptr<LocalCurveKeys> k(new LocalCurveKeys());
  TREEPO_ASSIGN_OR_RETURN(k->scheduler_, protocols::GenerateCurveKeyPair());
  TREEPO_ASSIGN_OR_RETURN(k->worker_, protocols::GenerateCurveKeyPair());
  TREEPO_ASSIGN_OR_RETURN(k->learner_, protocols::GenerateCurveKeyPair());
  std::string tmpl = (fs::temp_directory_path() / "treepo-keys-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {  // mode 0700
    return Internal(std::string("cannot make a key directory: ") + std::strerror(errno));
  }
  k->dir_ = tmpl;
  TREEPO_RETURN_IF_ERROR(protocols::WriteKeyPairFiles(k->dir_, "scheduler", k->scheduler_));
  TREEPO_RETURN_IF_ERROR(protocols::WriteKeyPairFiles(k->dir_, "worker", k->worker_));
  TREEPO_RETURN_IF_ERROR(protocols::WriteKeyPairFiles(k->dir_, "learner", k->learner_));
  return k;
}

Result<std::unique_ptr<LocalCurveKeys>> LocalCurveKeys::FromDir(const std::string& dir) {
  std::unique_ptr<LocalCurveKeys> k(new LocalCurveKeys());
  k->owned_ = false;
  std::error_code ec;
  k->dir_ = fs::absolute(dir, ec).lexically_normal().string();
  if (ec) k->dir_ = dir;
  TREEPO_ASSIGN_OR_RETURN(k->scheduler_, protocols::ReadKeyPairFile(k->dir_ + "/scheduler.key"));
  TREEPO_ASSIGN_OR_RETURN(k->worker_, protocols::ReadKeyPairFile(k->dir_ + "/worker.key"));
  TREEPO_ASSIGN_OR_RETURN(k->learner_, protocols::ReadKeyPairFile(k->dir_ + "/learner.key"));
  return k;
}

Status LocalCurveKeys::EnsureKeyDir(const std::string& dir) {
  for (const char* role : {"scheduler", "worker", "learner"}) {
    if (fs::exists(fs::path(dir) / (std::string(role) + ".key"))) continue;
    TREEPO_ASSIGN_OR_RETURN(protocols::CurveKeyPair pair, protocols::GenerateCurveKeyPair());
    TREEPO_RETURN_IF_ERROR(protocols::WriteKeyPairFiles(dir, role, pair));
  }
  return OkStatus();
}

LocalCurveKeys::~LocalCurveKeys() {
  std::error_code ec;
  if (owned_ && !dir_.empty()) fs::remove_all(dir_, ec);
}

void LocalCurveKeys::ApplyTo(scheduler::SchedulerSecurityOptions* security) const {
  security->server_pair = scheduler_;
  security->worker_public_keys = {worker_.public_key};
  security->learner_public_keys = {learner_.public_key};
}

std::vector<std::string> LocalCurveKeys::WorkerFlags() const {
  return {"--scheduler-key", dir_ + "/scheduler.pub", "--key", dir_ + "/worker.key"};
}

std::vector<std::string> LocalCurveKeys::LearnerFlags() const {
  return {"--scheduler-key", dir_ + "/scheduler.pub", "--key", dir_ + "/learner.key"};
}

}  // namespace treepo::cluster

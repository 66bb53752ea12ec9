// Who may talk to the scheduler (docs/security.md): the scheduler's CURVE key pair and, per
// role, the client public keys it admits. A bind that is not loopback needs keys unless
// `insecure` is set, which logs a warning on every start.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "protocols/transport.h"

namespace treepo::scheduler {

// Roles, as the ZAP handler reports them in a message's User-Id.
inline constexpr const char* kWorkerRole = "worker";
inline constexpr const char* kLearnerRole = "learner";

struct SchedulerSecurityOptions {
  std::string key_file;      // key: the scheduler's NAME.key (treepo keys)
  std::string worker_keys;   // worker_keys: a .pub file or a directory of them (workers)
  std::string learner_keys;  // learner_keys: the same for learners
  bool insecure = false;     // insecure: allow a non-loopback bind without keys (warned)
  // Keys held in memory (`curve = true` in treepo rollout): used as the files above.
  std::optional<protocols::CurveKeyPair> server_pair;
  std::vector<std::string> worker_public_keys;
  std::vector<std::string> learner_public_keys;

  bool enabled() const { return !key_file.empty() || server_pair.has_value(); }
  Status Validate() const;
};

// Reads key, worker_keys, learner_keys and insecure from `config`.
Status LoadSchedulerSecurityOptions(const Config& config, SchedulerSecurityOptions* options);

// The Router's CURVE settings for `bind_endpoint`: files read, the client map built (key ->
// role; a key listed for both roles is an error). Leaves `router` without CURVE when keys are
// off and the bind is loopback or insecure; kInvalidArgument for a non-loopback bind without
// keys.
Status ApplySchedulerSecurity(const SchedulerSecurityOptions& options,
                              const std::string& bind_endpoint, protocols::RouterOptions* router);

}  // namespace treepo::scheduler

#include "scheduler/service/scheduler_security.h"

#include "common/log.h"
#include "protocols/curve_keys.h"

namespace treepo::scheduler {

namespace pr = protocols;

Status SchedulerSecurityOptions::Validate() const {
  if (!enabled() && (!worker_keys.empty() || !learner_keys.empty() || !worker_public_keys.empty() ||
                     !learner_public_keys.empty())) {
    return InvalidArgument("worker_keys/learner_keys need the scheduler's own key (key = FILE)");
  }
  if (!key_file.empty() && server_pair) {
    return InvalidArgument("scheduler key given both as a file and in memory");
  }
  return OkStatus();
}

Status LoadSchedulerSecurityOptions(const Config& c, SchedulerSecurityOptions* o) {
  TREEPO_RETURN_IF_ERROR(c.Get("key", &o->key_file));
  TREEPO_RETURN_IF_ERROR(c.Get("worker_keys", &o->worker_keys));
  TREEPO_RETURN_IF_ERROR(c.Get("learner_keys", &o->learner_keys));
  TREEPO_RETURN_IF_ERROR(c.Get("insecure", &o->insecure));
  return OkStatus();
}

namespace {

Status AddKeys(const std::vector<std::string>& keys, const char* role,
               std::map<std::string, std::string>* clients) {
  for (const std::string& k : keys) {
    TREEPO_RETURN_IF_ERROR(pr::CheckZ85Key(k).WithContext(std::string(role) + " key"));
    auto [it, added] = clients->emplace(k, role);
    if (!added && it->second != role) {
      return InvalidArgument("public key " + k + " is listed for both " + it->second + " and " +
                             role + "; give each role its own keys");
    }
  }
  return OkStatus();
}

}  // namespace

Status ApplySchedulerSecurity(const SchedulerSecurityOptions& o, const std::string& bind_endpoint,
                              pr::RouterOptions* router) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  if (!o.enabled()) {
    if (pr::IsLoopbackEndpoint(bind_endpoint)) return OkStatus();
    if (!o.insecure) {
      return InvalidArgument(
          "bind " + bind_endpoint +
          " is reachable from the network: give the scheduler CURVE keys (key, worker_keys, "
          "learner_keys; make them with `treepo keys`, docs/security.md) or set insecure = true "
          "to accept anyone who reaches the port");
    }
    spdlog::warn(
        "INSECURE: the scheduler binds {} without CURVE keys: anyone who reaches the port can "
        "register as a worker or learner, read prompts and forge results (docs/security.md)",
        bind_endpoint);
    return OkStatus();
  }
  pr::CurveKeyPair server;
  if (o.server_pair) {
    server = *o.server_pair;
  } else {
    TREEPO_ASSIGN_OR_RETURN(server, pr::ReadKeyPairFile(o.key_file));
  }
  std::map<std::string, std::string> clients;
  std::vector<std::string> workers = o.worker_public_keys, learners = o.learner_public_keys;
  if (!o.worker_keys.empty()) {
    TREEPO_ASSIGN_OR_RETURN(std::vector<std::string> k, pr::ReadPublicKeys(o.worker_keys));
    workers.insert(workers.end(), k.begin(), k.end());
  }
  if (!o.learner_keys.empty()) {
    TREEPO_ASSIGN_OR_RETURN(std::vector<std::string> k, pr::ReadPublicKeys(o.learner_keys));
    learners.insert(learners.end(), k.begin(), k.end());
  }
  TREEPO_RETURN_IF_ERROR(AddKeys(workers, kWorkerRole, &clients));
  TREEPO_RETURN_IF_ERROR(AddKeys(learners, kLearnerRole, &clients));
  if (clients.empty()) {
    spdlog::warn("the scheduler has a key but admits no client keys: nobody can connect");
  }
  spdlog::info("CURVE on: {} worker and {} learner keys admitted", workers.size(), learners.size());
  router->curve_server = server;
  router->curve_clients = std::move(clients);
  return OkStatus();
}

}  // namespace treepo::scheduler

#include "cluster/launch/cluster_spec.h"

#include <filesystem>
#include <set>

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    std::string item = s.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

bool IsName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
      return false;
    }
  }
  return true;
}

// A DNS-1123 label (Kubernetes object names): lower-case letters, digits and '-'.
bool IsDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > 40 || s.front() == '-' || s.back() == '-') return false;
  for (char ch : s) {
    if (!(std::islower(static_cast<unsigned char>(ch)) ||
          std::isdigit(static_cast<unsigned char>(ch)) || ch == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

int ClusterSpec::TotalWorkers() const {
  int n = 0;
  for (const HostSpec& h : hosts) n += h.workers;
  return n;
}

int ClusterSpec::TotalLearners() const {
  int n = 0;
  for (const HostSpec& h : hosts) n += h.learners;
  return n;
}

std::string ClusterSpec::SchedulerEndpoint() const {
  return "tcp://" + head_address + ":" + (head_port == 0 ? "*" : std::to_string(head_port));
}

std::string ClusterSpec::BindEndpoint() const {
  return "tcp://" + (head_bind.empty() ? head_address : head_bind) + ":" +
         (head_port == 0 ? "*" : std::to_string(head_port));
}

std::string ClusterSpec::KeysDir() const {
  return keys_dir.empty() ? (fs::path(run_dir) / "keys").string() : keys_dir;
}

Status ClusterSpec::Validate() const {
  static const std::set<std::string> kLaunchers = {"local", "ssh", "slurm", "kubernetes"};
  if (!kLaunchers.count(launcher)) {
    return InvalidArgument("launcher: '" + launcher +
                           "' is not one of local, ssh, slurm, kubernetes");
  }
  if (!IsDnsLabel(name)) {
    return InvalidArgument("name: '" + name +
                           "' must be lower-case letters, digits and '-' (at most 40; it names "
                           "the Slurm job and the Kubernetes objects)");
  }
  if (run_dir.empty()) return InvalidArgument("run_dir is empty");
  if (model.empty()) return InvalidArgument("model is empty");
  if (head_address.empty()) return InvalidArgument("head.address is empty");
  if (head_port < 0 || head_port > 65535) return InvalidArgument("head.port must be 0..65535");
  if (dashboard_port < 0 || dashboard_port > 65535) {
    return InvalidArgument("head.dashboard_port must be 0..65535");
  }
  if (head_port == 0 && launcher != "local") {
    return InvalidArgument("head.port: the " + launcher +
                           " launcher needs a fixed port (0 picks a free one, local only)");
  }
  if (dashboard_port == 0 && launcher == "kubernetes") {
    return InvalidArgument(
        "head.dashboard_port: the kubernetes launcher needs a fixed port for "
        "the readiness probe");
  }
  if (head_port != 0 && head_port == dashboard_port) {
    return InvalidArgument("head.port and head.dashboard_port are the same port");
  }
  if (steps < 0) return InvalidArgument("steps must be >= 0");
  if (worker_threads < 1) return InvalidArgument("worker_threads must be >= 1");
  if (worker_pages < 1) return InvalidArgument("worker_pages must be >= 1");
  if (learner_threads < 1) return InvalidArgument("learner_threads must be >= 1");
  if (hosts.empty()) return InvalidArgument("no [hosts.NAME] table: at least one host is needed");
  std::string learner_host;
  for (const HostSpec& h : hosts) {
    const std::string k = "hosts." + h.name;
    if (!IsName(h.name)) {
      return InvalidArgument(k + ": a host's name is letters, digits, '-', '_' and '.'");
    }
    if (h.address.empty()) return InvalidArgument(k + ".address is empty");
    if (h.workers < 0) return InvalidArgument(k + ".workers must be >= 0");
    if (h.learners < 0) return InvalidArgument(k + ".learners must be >= 0");
    if (h.worker_threads < 0) return InvalidArgument(k + ".worker_threads must be >= 0");
    if (h.worker_pages < 0) return InvalidArgument(k + ".worker_pages must be >= 0");
    if (h.learners > 0) {
      if (!learner_host.empty()) {
        return InvalidArgument(k + ".learners: learners run on one host (hosts." + learner_host +
                               " has them already); their ranks meet in a directory of run_dir");
      }
      learner_host = h.name;
    }
  }
  if (TotalWorkers() < 1)
    return InvalidArgument("hosts: no host runs a worker (hosts.NAME.workers)");
  if (TotalLearners() < 1) {
    return InvalidArgument("hosts: no host runs a learner (hosts.NAME.learners)");
  }
  if (ssh.port < 1 || ssh.port > 65535) return InvalidArgument("ssh.port must be 1..65535");
  if (ssh.connect_timeout_s < 1) return InvalidArgument("ssh.connect_timeout_s must be >= 1");
  if (!kubernetes.namespace_name.empty() && !IsDnsLabel(kubernetes.namespace_name)) {
    return InvalidArgument("kubernetes.namespace: '" + kubernetes.namespace_name +
                           "' is not a DNS label");
  }
  return OkStatus();
}

Result<ClusterSpec> ClusterSpecFromConfig(const Config& c, const std::string& origin) {
  ClusterSpec s;
  s.path = origin;
  auto load = [&]() -> Status {
    TREEPO_RETURN_IF_ERROR(c.Get("name", &s.name));
    TREEPO_RETURN_IF_ERROR(c.Get("launcher", &s.launcher));
    TREEPO_RETURN_IF_ERROR(c.Get("run_dir", &s.run_dir));
    TREEPO_RETURN_IF_ERROR(c.Get("binary", &s.binary));
    TREEPO_RETURN_IF_ERROR(c.Get("model", &s.model));
    TREEPO_RETURN_IF_ERROR(c.Get("prompts", &s.prompts));
    TREEPO_RETURN_IF_ERROR(c.Get("train_config", &s.train_config));
    TREEPO_RETURN_IF_ERROR(c.Get("steps", &s.steps));
    TREEPO_RETURN_IF_ERROR(c.Get("worker_threads", &s.worker_threads));
    TREEPO_RETURN_IF_ERROR(c.Get("worker_pages", &s.worker_pages));
    TREEPO_RETURN_IF_ERROR(c.Get("learner_threads", &s.learner_threads));
    TREEPO_RETURN_IF_ERROR(c.Get("head.address", &s.head_address));
    TREEPO_RETURN_IF_ERROR(c.Get("head.bind", &s.head_bind));
    TREEPO_RETURN_IF_ERROR(c.Get("head.port", &s.head_port));
    TREEPO_RETURN_IF_ERROR(c.Get("head.dashboard_port", &s.dashboard_port));
    TREEPO_RETURN_IF_ERROR(c.Get("head.dashboard_token", &s.dashboard_token));
    TREEPO_RETURN_IF_ERROR(c.Get("keys.curve", &s.curve));
    TREEPO_RETURN_IF_ERROR(c.Get("keys.dir", &s.keys_dir));
    std::string ssh_options;
    TREEPO_RETURN_IF_ERROR(c.Get("ssh.user", &s.ssh.user));
    TREEPO_RETURN_IF_ERROR(c.Get("ssh.port", &s.ssh.port));
    TREEPO_RETURN_IF_ERROR(c.Get("ssh.identity_file", &s.ssh.identity_file));
    TREEPO_RETURN_IF_ERROR(c.Get("ssh.options", &ssh_options));
    TREEPO_RETURN_IF_ERROR(c.Get("ssh.connect_timeout_s", &s.ssh.connect_timeout_s));
    s.ssh.options = SplitList(ssh_options);
    TREEPO_RETURN_IF_ERROR(c.Get("slurm.partition", &s.slurm.partition));
    TREEPO_RETURN_IF_ERROR(c.Get("slurm.account", &s.slurm.account));
    TREEPO_RETURN_IF_ERROR(c.Get("slurm.time", &s.slurm.time));
    TREEPO_RETURN_IF_ERROR(c.Get("slurm.cpus_per_node", &s.slurm.cpus_per_node));
    TREEPO_RETURN_IF_ERROR(c.Get("slurm.extra", &s.slurm.extra));
    KubernetesSpec& k = s.kubernetes;
    TREEPO_RETURN_IF_ERROR(c.Get("kubernetes.namespace", &k.namespace_name));
    TREEPO_RETURN_IF_ERROR(c.Get("kubernetes.image", &k.image));
    TREEPO_RETURN_IF_ERROR(c.Get("kubernetes.image_pull_policy", &k.image_pull_policy));
    TREEPO_RETURN_IF_ERROR(c.Get("kubernetes.data_claim", &k.data_claim));
    TREEPO_RETURN_IF_ERROR(c.Get("kubernetes.data_mount", &k.data_mount));
    TREEPO_RETURN_IF_ERROR(c.Get("kubernetes.worker_cpu", &k.worker_cpu));
    TREEPO_RETURN_IF_ERROR(c.Get("kubernetes.worker_memory", &k.worker_memory));
    TREEPO_RETURN_IF_ERROR(c.Get("kubernetes.learner_cpu", &k.learner_cpu));
    TREEPO_RETURN_IF_ERROR(c.Get("kubernetes.learner_memory", &k.learner_memory));
    // [hosts.NAME] tables: the names are the second part of every hosts.* key.
    std::set<std::string> names;
    for (const auto& [key, value] : c.values()) {
      if (key.rfind("hosts.", 0) != 0) continue;
      const size_t dot = key.find('.', 6);
      if (dot == std::string::npos) {
        return InvalidArgument("'" + key + "' must be a table: [hosts." + key.substr(6) + "]");
      }
      names.insert(key.substr(6, dot - 6));
    }
    for (const std::string& n : names) {
      HostSpec h;
      h.name = n;
      h.address = n;
      const std::string p = "hosts." + n + ".";
      TREEPO_RETURN_IF_ERROR(c.Get(p + "address", &h.address));
      TREEPO_RETURN_IF_ERROR(c.Get(p + "workers", &h.workers));
      TREEPO_RETURN_IF_ERROR(c.Get(p + "learners", &h.learners));
      TREEPO_RETURN_IF_ERROR(c.Get(p + "worker_threads", &h.worker_threads));
      TREEPO_RETURN_IF_ERROR(c.Get(p + "worker_pages", &h.worker_pages));
      s.hosts.push_back(h);
    }
    TREEPO_RETURN_IF_ERROR(c.CheckAllConsumed());
    return s.Validate();
  };
  TREEPO_RETURN_IF_ERROR(load().WithContext("cluster file " + origin));
  return s;
}

Result<ClusterSpec> LoadClusterSpec(const std::string& path) {
  TREEPO_ASSIGN_OR_RETURN(Config c, Config::LoadTomlFile(path));
  return ClusterSpecFromConfig(c, path);
}

std::map<std::string, std::string> TrainKeysFromCluster(const ClusterSpec& s) {
  std::map<std::string, std::string> kv = {
      {"out_dir", s.run_dir},
      {"model.base", s.model},
      {"model.make_if_missing", "false"},
      {"cluster.workers", std::to_string(s.TotalWorkers())},
      {"cluster.learners", std::to_string(s.TotalLearners())},
      {"cluster.worker_threads", std::to_string(s.worker_threads)},
      {"cluster.worker_pages", std::to_string(s.worker_pages)},
      {"cluster.learner_threads", std::to_string(s.learner_threads)},
      {"scheduler.bind", s.BindEndpoint()},
      {"scheduler.advertise", s.SchedulerEndpoint()},
      {"dashboard.bind", (s.head_bind.empty() ? s.head_address : s.head_bind) + ":" +
                             std::to_string(s.dashboard_port)}};
  // Empty: the train config's own (or its default).
  if (!s.prompts.empty()) kv["task.prompts"] = s.prompts;
  if (!s.dashboard_token.empty()) kv["dashboard.token"] = s.dashboard_token;
  if (s.curve) kv["scheduler.key_dir"] = s.KeysDir();
  if (s.steps > 0) kv["steps"] = std::to_string(s.steps);
  return kv;
}

}  // namespace treepo::cluster

#include "cluster/launch/kubernetes.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cluster/local_keys.h"
#include "common/file_io.h"

namespace treepo::cluster {
namespace {

using nlohmann::json;

constexpr const char* kConfigDir = "/etc/treepo";
constexpr const char* kKeysDir = "/etc/treepo/keys";

json Metadata(const ClusterSpec& s, const std::string& name, const std::string& role) {
  return {{"name", s.name + "-" + name},
          {"namespace", s.kubernetes.namespace_name},
          {"labels",
           {{"app.kubernetes.io/name", "treepo"},
            {"app.kubernetes.io/instance", s.name},
            {"treepo/role", role}}}};
}

json Selector(const ClusterSpec& s, const std::string& role) {
  return {{"app.kubernetes.io/instance", s.name}, {"treepo/role", role}};
}

// The cluster file's keys as the Pods see them.
std::vector<std::string> PodClusterSets(const ClusterSpec& s) {
  std::vector<std::string> sets = {"head.address=" + s.name + "-head", "head.bind=0.0.0.0"};
  if (s.curve) sets.push_back(std::string("keys.dir=") + kKeysDir);
  return sets;
}

json Volumes(const ClusterSpec& s) {
  json v = json::array();
  v.push_back({{"name", "config"}, {"configMap", {{"name", s.name + "-config"}}}});
  if (s.curve) {
    v.push_back(
        {{"name", "keys"}, {"secret", {{"secretName", s.name + "-keys"}, {"defaultMode", 0400}}}});
  }
  v.push_back(
      {{"name", "data"}, {"persistentVolumeClaim", {{"claimName", s.kubernetes.data_claim}}}});
  return v;
}

json Mounts(const ClusterSpec& s) {
  json m = json::array();
  m.push_back({{"name", "config"}, {"mountPath", kConfigDir}, {"readOnly", true}});
  if (s.curve) m.push_back({{"name", "keys"}, {"mountPath", kKeysDir}, {"readOnly", true}});
  m.push_back({{"name", "data"}, {"mountPath", s.kubernetes.data_mount}});
  return m;
}

std::string Binary(const ClusterSpec& s) { return s.binary.empty() ? "treepo" : s.binary; }

json Container(const ClusterSpec& s, const std::string& name, json command, const std::string& cpu,
               const std::string& memory) {
  return {{"name", name},
          {"image", s.kubernetes.image},
          {"imagePullPolicy", s.kubernetes.image_pull_policy},
          {"command", std::move(command)},
          {"workingDir", s.kubernetes.data_mount},
          {"env", json::array({{{"name", "POD_NAME"},
                                {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}}})},
          {"resources", {{"requests", {{"cpu", cpu}, {"memory", memory}}}}},
          {"volumeMounts", Mounts(s)}};
}

json Deployment(const ClusterSpec& s, const std::string& role, int replicas, json container) {
  json pod_labels = Metadata(s, role, role)["labels"];
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", Metadata(s, role, role)},
          {"spec",
           {{"replicas", replicas},
            {"selector", {{"matchLabels", Selector(s, role)}}},
            {"template",
             {{"metadata", {{"labels", pod_labels}}},
              {"spec",
               {{"containers", json::array({std::move(container)})}, {"volumes", Volumes(s)}}}}}}}};
}

json JoinCommand(const ClusterSpec& s, const std::string& role, bool has_train_config) {
  json cmd = {Binary(s), "cluster", "join", std::string(kConfigDir) + "/cluster.toml",
              "--role",  role};
  if (role == "worker") {
    cmd.push_back("--name");
    cmd.push_back("$(POD_NAME)");
  }
  for (const std::string& x : PodClusterSets(s)) {
    cmd.push_back("--set");
    cmd.push_back(x);
  }
  if (has_train_config) {
    cmd.push_back("--config");
    cmd.push_back(std::string(kConfigDir) + "/train.toml");
  }
  return cmd;
}

}  // namespace

Result<std::string> RenderKubernetes(const ClusterSpec& s, const std::string& cluster_file_text,
                                     const std::string& train_config_text) {
  if (s.dashboard_port == 0) {
    return InvalidArgument("head.dashboard_port: the readiness probe needs a fixed port");
  }
  if (s.dashboard_token.empty()) {
    return InvalidArgument(
        "head.dashboard_token: the head's dashboard listens on the Pod network, which needs a "
        "token");
  }
  if (!s.curve) {
    return InvalidArgument("keys.curve: the Pods talk over the cluster network, which needs keys");
  }
  if (s.TotalLearners() != 1) {
    return InvalidArgument("hosts: the kubernetes launcher runs one learner (the file has " +
                           std::to_string(s.TotalLearners()) + ")");
  }
  const bool has_train = !train_config_text.empty();
  std::vector<json> docs;
  docs.push_back(
      {{"apiVersion", "v1"},
       {"kind", "ConfigMap"},
       {"metadata", Metadata(s, "config", "config")},
       {"data", {{"cluster.toml", cluster_file_text}, {"train.toml", train_config_text}}}});
  TREEPO_RETURN_IF_ERROR(LocalCurveKeys::EnsureKeyDir(s.KeysDir()));
  json keys = json::object();
  for (const char* role : {"scheduler", "worker", "learner"}) {
    for (const char* ext : {".key", ".pub"}) {
      const std::string f = std::string(role) + ext;
      TREEPO_ASSIGN_OR_RETURN(std::string text,
                              ReadFileToString(s.KeysDir() + "/" + f, "CurveZMQ key file"));
      keys[f] = text;
    }
  }
  docs.push_back({{"apiVersion", "v1"},
                  {"kind", "Secret"},
                  {"metadata", Metadata(s, "keys", "keys")},
                  {"type", "Opaque"},
                  {"stringData", keys}});
  docs.push_back(
      {{"apiVersion", "v1"},
       {"kind", "Service"},
       {"metadata", Metadata(s, "head", "head")},
       {"spec",
        {{"selector", Selector(s, "head")},
         {"ports",
          json::array({{{"name", "scheduler"}, {"port", s.head_port}, {"targetPort", s.head_port}},
                       {{"name", "dashboard"},
                        {"port", s.dashboard_port},
                        {"targetPort", s.dashboard_port}}})}}}});
  json head_cmd = {Binary(s), "train", "--cluster", std::string(kConfigDir) + "/cluster.toml"};
  for (const std::string& x : PodClusterSets(s)) {
    head_cmd.push_back("--cluster-set");
    head_cmd.push_back(x);
  }
  if (has_train) {
    head_cmd.push_back("--config");
    head_cmd.push_back(std::string(kConfigDir) + "/train.toml");
  }
  json head = Container(s, "head", head_cmd, s.kubernetes.learner_cpu, s.kubernetes.learner_memory);
  head["ports"] = json::array({{{"name", "scheduler"}, {"containerPort", s.head_port}},
                               {{"name", "dashboard"}, {"containerPort", s.dashboard_port}}});
  const json probe_get = {
      {"path", "/healthz"},
      {"port", s.dashboard_port},
      {"httpHeaders",
       json::array({{{"name", "Authorization"}, {"value", "Bearer " + s.dashboard_token}}})}};
  head["readinessProbe"] = {{"httpGet", probe_get}, {"periodSeconds", 5}, {"failureThreshold", 3}};
  head["livenessProbe"] = {{"httpGet", probe_get},
                           {"initialDelaySeconds", 600},
                           {"periodSeconds", 30},
                           {"failureThreshold", 4}};
  json head_deploy = Deployment(s, "head", 1, head);
  head_deploy["spec"]["strategy"] = {{"type", "Recreate"}};
  docs.push_back(head_deploy);
  docs.push_back(Deployment(s, "worker", s.TotalWorkers(),
                            Container(s, "worker", JoinCommand(s, "worker", has_train),
                                      s.kubernetes.worker_cpu, s.kubernetes.worker_memory)));
  docs.push_back(Deployment(s, "learner", 1,
                            Container(s, "learner", JoinCommand(s, "learner", has_train),
                                      s.kubernetes.learner_cpu, s.kubernetes.learner_memory)));
  std::string out = "# treepo cluster '" + s.name + "' from " + s.path +
                    " (treepo cluster render k8s). Apply with: kubectl apply -f FILE\n";
  for (const json& d : docs) out += "---\n" + d.dump(2) + "\n";
  return out;
}

}  // namespace treepo::cluster

// The Kubernetes launcher's manifests (`treepo cluster render k8s FILE > manifests.yaml`, then
// `kubectl apply -f manifests.yaml`): a ConfigMap with the cluster file and the train config,
// a Secret with the CurveZMQ keys, the head's Deployment (one replica; readiness and liveness
// probes on the dashboard's /healthz) and Service, the workers' Deployment (its replica count is
// the elastic knob: `kubectl scale deployment/NAME-worker --replicas=N`) and the learner's.
// Paths in the file (model, prompts, run_dir) are paths inside the Pods: on the volume claim
// kubernetes.data_claim mounted at kubernetes.data_mount.
#pragma once

#include <string>

#include "cluster/launch/cluster_spec.h"
#include "common/status.h"

namespace treepo::cluster {

// The manifests as one multi-document YAML stream (each document a JSON object, which YAML
// reads as it is). `cluster_file_text` and `train_config_text` go into the ConfigMap; the keys
// are read from spec.KeysDir() (made there when missing).
Result<std::string> RenderKubernetes(const ClusterSpec& spec, const std::string& cluster_file_text,
                                     const std::string& train_config_text);

}  // namespace treepo::cluster

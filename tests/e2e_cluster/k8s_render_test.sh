#!/bin/sh
# `treepo cluster render k8s FILE` (label `cluster`): the manifests are checked without a
# Kubernetes server: against the official client's schema models (validate_k8s.py), parsed by
# `kubectl` in client-only mode (`kubectl label --local`), and for what the launcher promises
# (head Deployment + Service, readiness probe on /healthz, a worker Deployment whose replicas
# are the file's workers, the learner, a Secret with the CurveZMQ keys). Files a Pod cannot run
# are refused with the key named.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/cluster_test_lib.sh"

BIN=$(treepo_binary) || { echo "SKIP: $BIN"; exit 77; }
/usr/bin/python3 -c "import kubernetes, yaml" 2>/dev/null ||
  { echo "SKIP: no python3-kubernetes / python3-yaml for the schema check"; exit 77; }
WORK=$(mktemp -d /tmp/treepo-k8s-XXXXXX)
trap 'rc=$?; [ $rc -eq 0 ] && rm -rf "$WORK" || echo "kept $WORK"' EXIT
cd "$WORK" || exit 1

cat >cluster.toml <<'TOML'
name = "rl-job"
launcher = "kubernetes"
run_dir = "/data/run"
model = "/data/base"
train_config = "train.toml"
[head]
port = 5555
dashboard_port = 8080
dashboard_token = "secret-token"
[kubernetes]
namespace = "rl"
image = "registry.example/treepo:1.0"
[hosts.pool]
workers = 5
learners = 1
TOML
echo 'steps = 7' >train.toml
"$BIN" cluster render k8s cluster.toml >manifests.yaml 2>render.err || fail "render" render.err
/usr/bin/python3 "$HERE/validate_k8s.py" manifests.yaml >validate.out || fail "schema check" validate.out
grep -q "^6 documents, 0 problems" validate.out || fail "expected 6 documents" validate.out
if command -v kubectl >/dev/null; then
  kubectl label --local -f manifests.yaml -o name check=ok >kubectl.out 2>&1 || fail "kubectl" kubectl.out
  [ "$(wc -l <kubectl.out)" = 6 ] || fail "kubectl read $(wc -l <kubectl.out) objects" kubectl.out
else
  echo "note: no kubectl; the schema check alone"
fi
/usr/bin/python3 - manifests.yaml <<'PY' || fail "manifest content" manifests.yaml
import sys, yaml
docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(sys.argv[1])) if d}
assert set(docs) == {("ConfigMap", "rl-job-config"), ("Secret", "rl-job-keys"),
                     ("Service", "rl-job-head"), ("Deployment", "rl-job-head"),
                     ("Deployment", "rl-job-worker"), ("Deployment", "rl-job-learner")}, docs.keys()
for d in docs.values():
    assert d["metadata"]["namespace"] == "rl"
head = docs[("Deployment", "rl-job-head")]["spec"]
assert head["replicas"] == 1 and head["strategy"]["type"] == "Recreate"
c = head["template"]["spec"]["containers"][0]
assert c["image"] == "registry.example/treepo:1.0"
assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
assert c["readinessProbe"]["httpGet"]["port"] == 8080
assert c["command"][1:4] == ["train", "--cluster", "/etc/treepo/cluster.toml"], c["command"]
assert "/etc/treepo/train.toml" in c["command"]
svc = docs[("Service", "rl-job-head")]["spec"]
assert sorted(p["port"] for p in svc["ports"]) == [5555, 8080]
assert svc["selector"] == head["template"]["metadata"]["labels"] or \
    all(head["template"]["metadata"]["labels"][k] == v for k, v in svc["selector"].items())
w = docs[("Deployment", "rl-job-worker")]["spec"]
assert w["replicas"] == 5
wc = w["template"]["spec"]["containers"][0]
assert wc["command"][1:3] == ["cluster", "join"] and "worker" in wc["command"], wc["command"]
assert "head.address=rl-job-head" in wc["command"]
assert docs[("Deployment", "rl-job-learner")]["spec"]["replicas"] == 1
keys = docs[("Secret", "rl-job-keys")]["stringData"]
assert sorted(keys) == sorted(r + e for r in ("scheduler", "worker", "learner") for e in (".key", ".pub"))
cm = docs[("ConfigMap", "rl-job-config")]["data"]
assert 'launcher = "kubernetes"' in cm["cluster.toml"] and cm["train.toml"].strip() == "steps = 7"
PY

# Refusals that name the key.
refuse() {
  key=$1
  shift
  if "$BIN" cluster render k8s cluster.toml "$@" >/dev/null 2>err.txt; then fail "render accepted $*"; fi
  grep -q "$key" err.txt || fail "the error does not name $key" err.txt
}
refuse "head.dashboard_token" --set head.dashboard_token=
refuse "head.dashboard_port" --set head.dashboard_port=0
refuse "hosts" --set hosts.pool.learners=2
refuse "kubernetes.namespace" --set kubernetes.namespace=Bad_Name
refuse "kubernetes.imagee" --set kubernetes.imagee=x
echo "ok: kubernetes manifests render and validate"

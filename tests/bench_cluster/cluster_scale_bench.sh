#!/bin/sh
# Benchmark: time from `treepo cluster scale FILE workers=+1` to the new worker's registration
# and to its first result, read from the head's log (run_dir/logs/train.log), for the local
# launcher and (as root, with network namespaces and sshd) the ssh launcher across namespaces.
# Prints a table per launcher and writes cluster_scale_bench.json. Not a test: the figures
# go to docs/cluster.md.
#   sh tests/bench_cluster/cluster_scale_bench.sh [TRIALS]
set -u
TRIALS=${1:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../e2e_cluster/cluster_test_lib.sh"
. "$HERE/../e2e_cluster/netns_lib.sh"
BIN=$(treepo_binary) || { echo "$BIN"; exit 1; }
OUT=$(pwd)/cluster_scale_bench.json
WORK=$(mktemp -d /tmp/treepo-scale-bench-XXXXXX)
cleanup() {
  # Namespaces: netns_down ends every process in them; else the local run's own `down`.
  [ "$NS_COUNT" -gt 0 ] || (cd "$WORK" && "$BIN" cluster down cluster.toml >/dev/null 2>&1)
  netns_down
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK" || exit 1
make_tiny_base "$BIN" || { echo "pretraining failed"; exit 1; }
{ write_train_config 1000000; echo 'trees = false'; } >train.toml  # [output] is its last table

# measure LAUNCHER PREFIX...: TRIALS scale-ups of one worker, one line of JSON per trial.
measure() {
  launcher=$1
  shift
  rm -rf run
  $@ "$BIN" cluster up cluster.toml >up.out 2>&1 || { echo "cluster up failed"; cat up.out; return 1; }
  wait_for 60 "2 workers" "$* $BIN cluster status cluster.toml 2>/dev/null | grep -q 'workers 2 live'" || return 1
  t=1
  while [ "$t" -le "$TRIALS" ]; do
    t0=$(date +%s.%N)
    $@ "$BIN" cluster scale cluster.toml workers=+1 >scale.out 2>&1 || { cat scale.out; return 1; }
    name=$(sed -n 's/.*started \(worker-[0-9]*\) .*/\1/p' scale.out)
    wait_for 60 "$name's first result" \
      "/usr/bin/python3 $HERE/first_result.py run/logs/train.log $name $t0 >>samples.$launcher" ||
      { tail -n 20 run/logs/train.log "run/logs/$name.log"; return 1; }
    $@ "$BIN" cluster scale cluster.toml workers=-1 >/dev/null 2>&1
    wait_for 30 "$name gone" "$* $BIN cluster status cluster.toml 2>/dev/null | grep -q '$name .*exited'"
    # The next trial starts once the head has forgotten it (no step waits on its tasks).
    wait_for 60 "2 workers live" "$* $BIN cluster status cluster.toml 2>/dev/null | grep -q 'workers 2 live'"
    t=$((t + 1))
  done
  $@ "$BIN" cluster down cluster.toml >/dev/null 2>&1
}

cat >cluster.toml <<'TOML'
launcher = "local"
run_dir = "run"
model = "base"
train_config = "train.toml"
[hosts.a]
address = "127.0.0.1"
workers = 2
learners = 1
TOML
: >samples.local
measure local || echo "local launcher: failed"

if why=$(netns_can_run); then
  netns_up 3 || exit 1
  cat >cluster.toml <<TOML
name = "bench"
launcher = "ssh"
run_dir = "run"
binary = "$BIN"
model = "base"
train_config = "train.toml"
[head]
address = "$NS_NET.1"
port = 5555
dashboard_port = 8080
dashboard_token = "bench"
[ssh]
identity_file = "$NS_DIR/id"
options = "StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=ERROR"
[hosts.h1]
address = "$NS_NET.2"
workers = 2
learners = 1
[hosts.h2]
address = "$NS_NET.3"
workers = 0
TOML
  : >samples.ssh
  measure ssh ip netns exec "${NS_PREFIX}0" || echo "ssh launcher: failed"
else
  echo "ssh launcher: skipped ($why)"
fi

/usr/bin/python3 - "$OUT" samples.* <<'PY'
import json, statistics, sys
out = {}
for path in sys.argv[2:]:
    launcher = path.split(".", 1)[1]
    rows = [json.loads(l) for l in open(path) if l.strip()]
    if not rows:
        continue
    out[launcher] = rows
    print(f"\nlauncher {launcher}: `cluster scale workers=+1` to the new worker's ...")
    print(f"{'trial':>5} {'registered ms':>14} {'first result ms':>16}")
    for i, r in enumerate(rows, 1):
        print(f"{i:>5} {r['registered_ms']:>14.0f} {r['first_result_ms']:>16.0f}")
    print(f"{'median':>5} {statistics.median(r['registered_ms'] for r in rows):>14.0f} "
          f"{statistics.median(r['first_result_ms'] for r in rows):>16.0f}")
json.dump(out, open(sys.argv[1], "w"), indent=2)
print(f"\nwrote {sys.argv[1]}")
PY

#!/bin/sh
# The local launcher through the cluster commands (label `cluster`), on real processes:
# `train --cluster FILE` over two "hosts" of this machine (every step once, the processes
# recorded, every log under run_dir/logs including the head's), then `cluster up` / `status`
# (the table with registered workers) / `scale workers=3` / `scale workers=-1` / `down` (no
# process left), and the errors a user meets (an unknown key, a second `up`, a bad scale).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/cluster_test_lib.sh"

BIN=$(treepo_binary) || { echo "SKIP: $BIN"; exit 77; }
WORK=$(mktemp -d /tmp/treepo-cluster-local-XXXXXX)
cleanup() {
  rc=$?
  if [ -d "$WORK/run/procs" ]; then
    for f in "$WORK"/run/procs/*.json; do
      [ -f "$f" ] || continue
      pid=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$f")
      [ -n "$pid" ] && kill -9 -- "-$pid" "$pid" 2>/dev/null
    done
  fi
  if [ $rc -eq 0 ]; then rm -rf "$WORK"; else echo "kept $WORK for inspection"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
cd "$WORK" || exit 1
make_tiny_base "$BIN" || fail "pretraining the tiny base model"
write_train_config 3 >train.toml
cat >cluster.toml <<'TOML'
launcher = "local"
run_dir = "run"
model = "base"
train_config = "train.toml"
[hosts.a]
address = "127.0.0.1"
workers = 1
learners = 1
[hosts.b]
address = "127.0.0.1"
workers = 1
worker_pages = 512
TOML

timeout 120 "$BIN" train --cluster cluster.toml >train.out 2>train.err || fail "train --cluster" train.err
check_steps run/metrics.jsonl 3 || fail "metrics.jsonl"
for n in worker-1 worker-2 learner; do
  grep -q '"launcher": "local"' "run/procs/$n.json" || fail "no record of $n"
  [ -s "run/logs/$n.log" ] || fail "no log of $n"
done
grep -q '"host": "b"' run/procs/worker-2.json || fail "worker-2 is on host b"
grep -q "effective config" run/logs/train.log || fail "the head's log is not under run_dir/logs"
echo "ok: train --cluster (local), 3 steps each once"

# Errors a user meets.
if "$BIN" cluster status cluster.toml --set hosts.a.wrokers=1 >/dev/null 2>err.txt; then fail "unknown key accepted"; fi
grep -q "hosts.a.wrokers" err.txt || fail "the error does not name the key" err.txt
if "$BIN" train --cluster cluster.toml --set rollout.widht=2 >/dev/null 2>err.txt; then fail "unknown train key accepted"; fi
grep -q "rollout.widht" err.txt || fail "the error does not name the train key" err.txt

rm -rf run
timeout 60 "$BIN" cluster up cluster.toml --train-set steps=100000 >up.out 2>&1 || fail "cluster up" up.out
if "$BIN" cluster up cluster.toml >up2.out 2>&1; then fail "a second up was accepted"; fi
grep -q "runs already" up2.out || fail "second up" up2.out
wait_for 30 "two workers registered" \
  "$BIN cluster status cluster.toml 2>&1 | tee status.out | grep -q 'workers 2 live'" || fail "status" status.out
grep -q "worker-2 .*running" status.out || fail "status lists worker-2" status.out
"$BIN" cluster scale cluster.toml workers=3 >scale.out 2>&1 || fail "scale 3" scale.out
grep -q "started worker-3" scale.out || fail "scale started no worker-3" scale.out
wait_for 30 "a third worker registered" \
  "$BIN cluster status cluster.toml 2>&1 | tee status.out | grep -q 'workers 3 live'" || fail "worker-3 joined" status.out
# A process that joins by itself (what a Kubernetes Pod runs): the same worker command line.
if "$BIN" cluster join cluster.toml --role worker >join.out 2>&1; then fail "join without a port"; fi
grep -q "head.port" join.out || fail "join's error does not name head.port" join.out
PORT=$(sed 's/.*://' run/endpoint)
"$BIN" cluster join cluster.toml --role worker --name joined-1 --set head.port="$PORT" >join.out 2>&1 &
JOINED=$!
wait_for 30 "the joined worker registered" "grep -q 'registered' join.out" || fail "join" join.out
wait_for 30 "the head lists it" \
  "$BIN cluster status cluster.toml 2>&1 | tee status.out | grep -q 'joined-1'" || fail "joined-1 in status" status.out
kill "$JOINED"
wait "$JOINED"
if "$BIN" cluster scale cluster.toml workers=0 >scale.out 2>&1; then fail "scale to 0 accepted"; fi
if "$BIN" cluster scale cluster.toml wrkers=2 >scale.out 2>&1; then fail "a bad scale request was accepted"; fi
"$BIN" cluster scale cluster.toml workers=-1 >scale.out 2>&1 || fail "scale -1" scale.out
grep -q "stopping worker-3" scale.out || fail "scale -1 stops the newest" scale.out
wait_for 30 "worker-3 exited" \
  "$BIN cluster status cluster.toml 2>&1 | tee status.out | grep -q 'worker-3 .*exited'" || fail "worker-3 exit" status.out
pids=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' run/procs/*.json)
"$BIN" cluster down cluster.toml --grace-ms 20000 >down.out 2>&1 || fail "cluster down" down.out
for p in $pids; do
  if kill -0 "$p" 2>/dev/null && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q treepo; then
    fail "process $p still runs after down" down.out
  fi
done
[ -z "$(ls run/procs 2>/dev/null)" ] || fail "down left records" down.out
echo "ok: cluster up/status/scale/down (local)"

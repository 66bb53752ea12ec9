#!/bin/sh
# Multi-host runs over real network namespaces and real sshd (label `cluster`): four "hosts"
# on a private bridge, the head in the first, the workers in the next two, the learner in the
# last (with netem delay and loss on its link where the kernel has netem), CurveZMQ on, every
# process started by the ssh launcher. `netns_ssh_test.sh train` or `... ops`:
#   train: `treepo train --cluster FILE` completes every step exactly once, and again when a
#          worker is SIGKILLed on its host mid-run (reported at once through its watcher), and
#          when the learner is (restarted on its host over ssh from its newest checkpoint);
#   ops:   `treepo cluster up` (the head itself started over ssh), `status` (the table with the
#      registered workers), `scale workers=+1` (a third worker registers), `scale workers=-1`,
#      `down` (nothing is left running in any namespace, the logs are fetched).
# Skips (exit 77) without root, network namespaces or sshd.
set -u
MODE=${1:-train}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/netns_lib.sh"
. "$HERE/cluster_test_lib.sh"

BIN=$(treepo_binary) || { echo "SKIP: $BIN"; exit 77; }
why=$(netns_can_run) || { echo "SKIP: $why"; exit 77; }
WORK=$(mktemp -d /tmp/treepo-cluster-ssh-XXXXXX)
cleanup() {
  rc=$?
  netns_down
  if [ $rc -eq 0 ]; then rm -rf "$WORK"; else echo "kept $WORK for inspection"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

netns_up 4 || fail "network namespace set-up"
netns_netem 3 20ms 1%
cd "$WORK" || exit 1
make_tiny_base "$BIN" || fail "pretraining the tiny base model"
write_train_config 4 > train.toml
cat > cluster.toml <<TOML
name = "nstest"
launcher = "ssh"
run_dir = "run"
binary = "$BIN"
model = "base"
train_config = "train.toml"
[head]
address = "$NS_NET.1"
port = 5555
dashboard_port = 8080
dashboard_token = "test-token"
[keys]
curve = true
[ssh]
identity_file = "$NS_DIR/id"
options = "StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=ERROR,ControlMaster=auto,ControlPath=$NS_DIR/cm-%C,ControlPersist=30"
connect_timeout_s = 5
[hosts.h1]
address = "$NS_NET.2"
workers = 1
[hosts.h2]
address = "$NS_NET.3"
workers = 1
[hosts.h3]
address = "$NS_NET.4"
learners = 1
TOML

if [ "$MODE" = train ]; then
timeout 240 ip netns exec "${NS_PREFIX}0" "$BIN" train --cluster cluster.toml >train.out 2>train.err ||
  fail "train --cluster exited $?" train.err
check_steps run/metrics.jsonl 4 || fail "metrics.jsonl"
for p in worker-1:$NS_NET.2 worker-2:$NS_NET.3 learner:$NS_NET.4; do
  name=${p%%:*}
  grep -q "\"launcher\": \"ssh\"" "run/procs/$name.json" || fail "$name was not started over ssh"
  grep -q "\"address\": \"${p#*:}\"" "run/procs/$name.json" || fail "$name not on ${p#*:}"
done
grep -q "registered" run/logs/worker-1.log || fail "worker-1 never registered" run/logs/worker-1.log
echo "ok: train --cluster over ssh, 4 steps, each once"

# A worker SIGKILLed on its host mid-run: its watcher reports the exit at once and the run
# completes every step with the other worker.
rm -rf run
write_train_config 40 >train.toml
ip netns exec "${NS_PREFIX}0" "$BIN" train --cluster cluster.toml >train.out 2>train.err &
TRAIN=$!
wait_for 60 "two steps done" "[ \$(grep -c '\"step\"' run/metrics.jsonl 2>/dev/null || echo 0) -ge 2 ]" ||
  fail "the run did not start" train.err
WPID=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' run/procs/worker-1.json)
KILLED=$(date +%s.%N)
ip netns exec "${NS_PREFIX}1" pkill -9 -P "$WPID" || fail "no worker process under $WPID on h1"
wait "$TRAIN" || fail "train --cluster exited $? after worker-1 was killed" train.err
check_steps run/metrics.jsonl 40 || fail "metrics.jsonl after the kill"
grep -q "worker-1 exited (exit code 137)" run/logs/train.log || fail "the kill was not reported" run/logs/train.log
/usr/bin/python3 - run/logs/train.log "$KILLED" <<'PY'
import datetime, re, sys
for line in open(sys.argv[1]):
    if "worker-1 exited" in line:
        t = datetime.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        print("worker-1's SIGKILL reported by the head after %.0f ms" % ((t - float(sys.argv[2])) * 1000))
        break
PY
echo "ok: a worker SIGKILLed on its host is reported and the run completes"

# The learner SIGKILLed on its host mid-run: the head restarts it there over ssh from the
# newest complete checkpoint, sends it the steps since again, and every step is recorded once.
rm -rf run
write_train_config 12 | sed 's/^checkpoint_every = 0$/checkpoint_every = 2/' >train.toml
ip netns exec "${NS_PREFIX}0" "$BIN" train --cluster cluster.toml >train.out 2>train.err &
TRAIN=$!
wait_for 90 "the checkpoint of step 4" "[ -s run/checkpoints/step_000004/state.json ]" ||
  fail "no checkpoint of step 4" train.err
LPID=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' run/procs/learner.json)
KILLED=$(date +%s.%N)
ip netns exec "${NS_PREFIX}3" pkill -9 -P "$LPID" || fail "no learner process under $LPID on h3"
wait "$TRAIN" || fail "train --cluster exited $? after the learner was killed" train.err
check_steps run/metrics.jsonl 12 || fail "metrics.jsonl after the learner's kill"
grep -q "learner exited (exit code 137)" run/logs/train.log || fail "the kill was not reported" run/logs/train.log
grep -q "RL: learner restarted at step" run/logs/train.log || fail "no restart" run/logs/train.log
[ "$(grep -c "started learner on $NS_NET.4 (ssh" run/logs/train.log)" -eq 2 ] ||
  fail "the learner was not started again on h3 over ssh" run/logs/train.log
/usr/bin/python3 - run/logs/train.log "$KILLED" <<'PY'
import datetime, re, sys
for line in open(sys.argv[1]):
    if "RL: learner restarted at step" in line:
        t = datetime.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        print("the learner's SIGKILL on h3 to its restart over ssh: %.0f ms" % ((t - float(sys.argv[2])) * 1000))
        break
PY
echo "ok: the learner SIGKILLed on its host is restarted there and every step is recorded once"
exit 0
fi

NS0="ip netns exec ${NS_PREFIX}0"
timeout 120 $NS0 "$BIN" cluster up cluster.toml --train-set steps=100000 >up.out 2>&1 || fail "cluster up" up.out
wait_for 60 "two workers registered" \
  "$NS0 $BIN cluster status cluster.toml 2>&1 | tee status.out | grep -q 'workers 2 live'" || fail "status" status.out
grep -q "worker-1 .*running" status.out || fail "status lists worker-1 running" status.out
$NS0 "$BIN" cluster scale cluster.toml workers=+1 >scale.out 2>&1 || fail "scale +1" scale.out
grep -q "started worker-3" scale.out || fail "scale +1 started no worker-3" scale.out
wait_for 60 "a third worker registered" \
  "$NS0 $BIN cluster status cluster.toml 2>&1 | tee status.out | grep -q 'worker-3 .*running' && grep -q 'workers 3 live' status.out" ||
  fail "worker-3 joined" status.out
$NS0 "$BIN" cluster scale cluster.toml workers=-1 >scale.out 2>&1 || fail "scale -1" scale.out
grep -q "stopping worker-3" scale.out || fail "scale -1 stops the newest worker" scale.out
wait_for 30 "worker-3 exited" \
  "$NS0 $BIN cluster status cluster.toml 2>&1 | tee status.out | grep -q 'worker-3 .*exited'" || fail "worker-3 exit" status.out
$NS0 "$BIN" cluster down cluster.toml --grace-ms 20000 >down.out 2>&1 || fail "cluster down" down.out
[ -s run/logs/hosts/h1/worker-1.log ] || fail "down fetched no log of worker-1"
i=0
while [ $i -lt 4 ]; do
  for p in $(ip netns pids "${NS_PREFIX}$i"); do
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "$BIN"; then
      fail "a treepo process is left in ${NS_PREFIX}$i: $(tr '\0' ' ' <"/proc/$p/cmdline")"
    fi
  done
  i=$((i + 1))
done
echo "ok: cluster up/status/scale/down over ssh"

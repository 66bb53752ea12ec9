#!/bin/sh
# Multi-host runs over real network namespaces and real sshd (label `cluster`): four "hosts"
# on a private bridge, the head in the first, the workers in the next two, the learner in the
# last (with netem delay and loss on its link where the kernel has netem), CurveZMQ on, every
# process started by the ssh launcher. `netns_ssh_test.sh train`, `... head` or `... ops`:
#   train: `treepo train --cluster FILE` completes every step exactly once, and again when a
#          worker is SIGKILLed on its host mid-run (reported at once through its watcher) while
#          another joins (`cluster scale workers=+1`: it serves tasks before the run ends), and
#          when the learner is (restarted on its host over ssh from its newest checkpoint);
#   head:  the head SIGKILLed mid-run and resumed with `treepo train --resume RUN_DIR --cluster
#          FILE`: the workers it left on their hosts rejoin the new head (the same processes),
#          its learner is replaced by one from the newest checkpoint, every step is recorded
#          once with the versions of an undisturbed run, and no process is left anywhere;
#   ops:   `treepo cluster up` (the head itself started over ssh), `status` (the table with the
#      registered workers), `scale workers=+1` (a third worker registers), `scale workers=-1`,
#      the head SIGKILLed and `cluster up --resume` (the workers rejoin it), `down` (nothing is
#      left running in any namespace, the logs are fetched).
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
write_train_config 120 >train.toml
ip netns exec "${NS_PREFIX}0" "$BIN" train --cluster cluster.toml >train.out 2>train.err &
TRAIN=$!
wait_for 60 "two steps done" "[ \$(grep -c '\"step\"' run/metrics.jsonl 2>/dev/null || echo 0) -ge 2 ]" ||
  fail "the run did not start" train.err
WPID=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' run/procs/worker-1.json)
KILLED=$(date +%s.%N)
ip netns exec "${NS_PREFIX}1" pkill -9 -P "$WPID" || fail "no worker process under $WPID on h1"
# Another worker joins the running job (over ssh, on the host with the fewest workers: h1).
ip netns exec "${NS_PREFIX}0" "$BIN" cluster scale cluster.toml workers=+1 >scale.out 2>&1 ||
  fail "scale +1 during the run" scale.out
grep -q "started worker-3 on $NS_NET.2" scale.out || fail "scale +1 started no worker-3 on h1" scale.out
wait "$TRAIN" || fail "train --cluster exited $? after worker-1 was killed" train.err
check_steps run/metrics.jsonl 120 || fail "metrics.jsonl after the kill"
grep -q "worker-1 exited (exit code 137)" run/logs/train.log || fail "the kill was not reported" run/logs/train.log
print_delay run/logs/train.log "worker-1 exited" "$KILLED" "worker-1's SIGKILL reported by the head after"
/usr/bin/python3 "$HERE/../bench_cluster/first_result.py" run/logs/train.log worker-3 "$KILLED" >joined.json ||
  fail "worker-3 joined the run but delivered no result" run/logs/train.log
echo "worker-3 joined mid-run (ms after the kill): $(cat joined.json)"
echo "ok: a worker SIGKILLed on its host is reported, another joins mid-run, and the run completes"

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
print_delay run/logs/train.log "RL: learner restarted at step" "$KILLED" \
  "the learner's SIGKILL on h3 to its restart over ssh:"
echo "ok: the learner SIGKILLed on its host is restarted there and every step is recorded once"
exit 0
fi

# No treepo process left in any namespace (fails naming the first one found).
check_nothing_left() {
  i=0
  while [ $i -lt 4 ]; do
    for p in $(ip netns pids "${NS_PREFIX}$i"); do
      if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "$BIN"; then
        fail "a treepo process is left in ${NS_PREFIX}$i: $(tr '\0' ' ' <"/proc/$p/cmdline")"
      fi
    done
    i=$((i + 1))
  done
}

# record_pid NAME: the pid (process group) of NAME on its host, from its record.
record_pid() { sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "run/procs/$1.json"; }

if [ "$MODE" = head ]; then
STEPS=60
write_train_config $STEPS | sed 's/^checkpoint_every = 0$/checkpoint_every = 2/' >train.toml
grep -q "checkpoint_every = 2" train.toml || fail "train.toml has no checkpoint_every = 2"
ip netns exec "${NS_PREFIX}0" "$BIN" train --cluster cluster.toml >train.out 2>train.err &
TRAIN=$!
# Killed once a few steps and a checkpoint are in (step_000004 is written when step 4 starts).
end=$(($(date +%s) + 90))
until [ -f run/checkpoints/step_000004/state.json ]; do
  [ "$(date +%s)" -lt "$end" ] || fail "no checkpoint of step 4 within 90 s" train.err
  kill -0 "$TRAIN" 2>/dev/null || fail "train --cluster ended before it was killed" train.err
  sleep 0.05
done
kill -9 "$TRAIN"
KILLED=$(date +%s.%N)
wait "$TRAIN" 2>/dev/null
RECORDED=$(grep -c '"step"' run/metrics.jsonl)
[ "$RECORDED" -lt $STEPS ] || fail "the run finished before the head was killed"
W1=$(record_pid worker-1)
W2=$(record_pid worker-2)
L=$(record_pid learner)
# The processes on the other hosts outlive their head (their watchers died with it).
ip netns exec "${NS_PREFIX}1" kill -0 "$W1" || fail "worker-1 died with its head"
ip netns exec "${NS_PREFIX}2" kill -0 "$W2" || fail "worker-2 died with its head"
ip netns exec "${NS_PREFIX}3" kill -0 "$L" || fail "the learner died with its head"
echo "head SIGKILLed after $RECORDED steps recorded"

ip netns exec "${NS_PREFIX}0" "$BIN" train --resume run --cluster cluster.toml >resume.out 2>resume.err &
RESUME=$!
wait_for 60 "the resumed head" "grep -q 'resuming from' run/logs/train.log" || fail "no resume" resume.err
FROM=$(sed -n 's/.*resuming from .* at step \([0-9]*\) .*/\1/p' run/logs/train.log | tail -n 1)
end=$(($(date +%s) + 90))
while [ "$(grep -c '"step"' run/metrics.jsonl)" -le "$FROM" ]; do
  [ "$(date +%s)" -lt "$end" ] || fail "the resumed run recorded no step within 90 s" resume.err
  sleep 0.05
done
NEXT=$(date +%s.%N)
wait "$RESUME" || fail "train --resume --cluster exited $?" resume.err
check_steps run/metrics.jsonl $STEPS || fail "metrics.jsonl after the resume"
# Versions of an undisturbed synchronous run: step s rolled out on version s, trained to s + 1.
/usr/bin/python3 - run/metrics.jsonl <<'PY' || fail "versions in metrics.jsonl"
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    s = j["step"]
    if (j["weight_version"], j["rollout_version_min"], j["rollout_version_max"]) != (s + 1, s, s):
        print("step %d: weight_version %s, rollout versions %s..%s" % (
            s, j["weight_version"], j["rollout_version_min"], j["rollout_version_max"]))
        sys.exit(1)
PY
for w in worker-1:$W1 worker-2:$W2; do
  name=${w%%:*}
  [ "$(record_pid "$name")" = "${w#*:}" ] || fail "$name was started again instead of rejoining"
  grep -q "$name (pid ${w#*:} on .*) of the previous head still runs: it rejoins" run/logs/train.log ||
    fail "the resumed head did not take $name back" run/logs/train.log
  [ "$(grep -c "registered as worker" "run/logs/$name.log")" -ge 2 ] ||
    fail "$name did not register with the new head" "run/logs/$name.log"
done
grep -q "stopping learner (pid $L on " run/logs/train.log || fail "the old learner was not stopped"
[ "$(record_pid learner)" != "$L" ] || fail "no new learner was started"
grep -q "resumed from run/checkpoints/step_0000" run/logs/learner.log ||
  fail "the new learner did not resume from a checkpoint" run/logs/learner.log
check_nothing_left
/usr/bin/python3 -c "import sys; print('head SIGKILL -> the resumed run recorded step %s after %.2f s' % (sys.argv[3], float(sys.argv[2]) - float(sys.argv[1])))" "$KILLED" "$NEXT" "$FROM"
echo "ok: the head SIGKILLed and resumed over ssh: workers rejoined, learner replaced, every step once"
exit 0
fi

NS0="ip netns exec ${NS_PREFIX}0"
timeout 120 $NS0 "$BIN" cluster up cluster.toml --train-set steps=100000 \
  --train-set output.checkpoint_every=20 >up.out 2>&1 || fail "cluster up" up.out
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
# The head SIGKILLed and resumed detached (`cluster up --resume`): the workers rejoin it.
wait_for 60 "a checkpoint" "[ -f run/checkpoints/step_000020/state.json ]" || fail "no checkpoint"
HEAD=$(record_pid head)
$NS0 kill -9 -- "-$HEAD" || fail "no head process group $HEAD"
wait_for 30 "the head gone" "! $NS0 kill -0 $HEAD 2>/dev/null" || fail "the head survived SIGKILL"
timeout 120 $NS0 "$BIN" cluster up cluster.toml --resume >up.out 2>&1 || fail "cluster up --resume" up.out
[ "$(record_pid head)" != "$HEAD" ] || fail "cluster up --resume recorded no new head"
wait_for 60 "both workers back" \
  "$NS0 $BIN cluster status cluster.toml 2>&1 | tee status.out | grep -q 'workers 2 live'" ||
  fail "the workers did not rejoin the resumed head" status.out run/logs/head.log
grep -q "worker-1 (pid .*) of the previous head still runs: it rejoins" run/logs/train.log ||
  fail "the resumed head did not take worker-1 back" run/logs/head.log
echo "ok: cluster up --resume after the head's SIGKILL: the workers rejoined"
$NS0 "$BIN" cluster down cluster.toml --grace-ms 20000 >down.out 2>&1 || fail "cluster down" down.out
[ -s run/logs/hosts/h1/worker-1.log ] || fail "down fetched no log of worker-1"
check_nothing_left
echo "ok: cluster up/status/scale/down over ssh"

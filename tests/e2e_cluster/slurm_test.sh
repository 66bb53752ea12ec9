#!/bin/sh
# The slurm launcher on a real single-host Slurm (label `cluster`): munged, slurmctld and slurmd
# started here on this machine with a private configuration, then `treepo cluster up FILE`
# submits the generated sbatch script; inside the allocation `cluster up` reads SLURM_PROCID and
# SLURM_JOB_NODELIST, runs the head and the node's workers and learner (CurveZMQ on), and the
# run completes every step exactly once; then the roles of a two-node allocation's two tasks.
# Skips (exit 77) with the reason where Slurm cannot
# start (no root, packages missing, daemons refuse). Everything started here is stopped on exit.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/cluster_test_lib.sh"

BIN=$(treepo_binary) || { echo "SKIP: $BIN"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: not root (slurmd runs jobs as root here)"; exit 77; }
for b in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged /usr/bin/sbatch; do
  [ -x "$b" ] || { echo "SKIP: no $b (apt-get install slurm-wlm munge)"; exit 77; }
done

SL=$(mktemp -d /tmp/treepo-slurm-XXXXXX)
WORK=$SL/work
mkdir -p "$WORK" "$SL/state" "$SL/spool"
cleanup() {
  rc=$?
  [ -f "$WORK/run/slurm_job_id" ] && SLURM_CONF=$SL/slurm.conf scancel "$(cat "$WORK/run/slurm_job_id")" 2>/dev/null
  for p in slurmd slurmctld munged; do
    [ -f "$SL/$p.pid" ] && kill "$(cat "$SL/$p.pid")" 2>/dev/null
  done
  sleep 0.5
  for p in slurmd slurmctld munged; do
    [ -f "$SL/$p.pid" ] && kill -9 "$(cat "$SL/$p.pid")" 2>/dev/null
  done
  if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rm -rf "$SL"; else echo "kept $SL for inspection"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

skip() {
  echo "SKIP: $1"
  for f in "$SL"/*.log; do [ -f "$f" ] && { echo "==== $f"; tail -n 15 "$f"; }; done
  exit 77
}

NODE=$(hostname -s)
PORT_BASE=$((17000 + $$ % 1000 * 2))
dd if=/dev/urandom of="$SL/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$SL/munge.key"
/usr/sbin/munged --force --key-file="$SL/munge.key" --socket="$SL/munge.sock" \
  --pid-file="$SL/munged.pid" --log-file="$SL/munged.log" --seed-file="$SL/munge.seed" ||
  skip "munged does not start"
cat >"$SL/slurm.conf" <<CONF
ClusterName=treepotest
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT_BASE
SlurmdPort=$((PORT_BASE + 1))
AuthType=auth/munge
AuthInfo=socket=$SL/munge.sock
CredType=cred/munge
StateSaveLocation=$SL/state
SlurmdSpoolDir=$SL/spool
SlurmctldPidFile=$SL/slurmctld.pid
SlurmdPidFile=$SL/slurmd.pid
SlurmctldLogFile=$SL/slurmctld.log
SlurmdLogFile=$SL/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=treepo Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$SL/slurm.conf
/usr/sbin/slurmctld -f "$SLURM_CONF" -i 2>"$SL/slurmctld.err" || skip "slurmctld does not start"
/usr/sbin/slurmd -f "$SLURM_CONF" -N "$NODE" 2>"$SL/slurmd.err" || skip "slurmd does not start"
wait_for 30 "the node to be idle" "sinfo -h -o %t 2>/dev/null | grep -q idle" || skip "the Slurm node never became idle"

cd "$WORK" || exit 1
make_tiny_base "$BIN" || fail "pretraining the tiny base model"
write_train_config 3 >train.toml
cat >cluster.toml <<TOML
name = "slurmtest"
launcher = "slurm"
run_dir = "run"
binary = "$BIN"
model = "base"
train_config = "train.toml"
[head]
bind = "0.0.0.0"
port = $((PORT_BASE + 2))
dashboard_port = $((PORT_BASE + 3))
dashboard_token = "test-token"
[slurm]
time = "00:05:00"
[hosts.n1]
workers = 2
learners = 1
TOML
"$BIN" cluster up cluster.toml >up.out 2>&1 || fail "cluster up (sbatch)" up.out
[ -s run/slurm_job_id ] || fail "no run/slurm_job_id" up.out
JOB=$(cat run/slurm_job_id)
wait_for 120 "job $JOB to end" "! squeue -h -j $JOB 2>/dev/null | grep -q ." || fail "job $JOB still runs" run/logs/slurm-$JOB.log
check_steps run/metrics.jsonl 3 || fail "metrics.jsonl" run/logs/slurm-$JOB.log
grep -q "Slurm task 0 on $NODE" run/logs/slurm-$JOB.log || fail "the task did not take the head's role" run/logs/slurm-$JOB.log
[ -f run/summary.json ] || fail "no summary.json" run/logs/slurm-$JOB.log
rm -f run/slurm_job_id
echo "ok: slurm launcher, job $JOB, 3 steps each once"

# Two tasks of a two-node allocation, as srun starts them (this machine has one Slurm node, so
# the two tasks run here with the variables srun would give them; the node list is expanded
# by scontrol): task 0 takes the head's role and host a, task 1 host b's worker.
cat >cluster2.toml <<TOML
launcher = "slurm"
run_dir = "run2"
binary = "$BIN"
model = "base"
train_config = "train.toml"
[head]
bind = "127.0.0.1"
port = $((PORT_BASE + 4))
[hosts.a]
workers = 1
learners = 1
[hosts.b]
workers = 1
TOML
SLURM_JOB_ID=4242 SLURM_JOB_NODELIST="localhost,127.0.0.1" SLURM_PROCID=1 \
  "$BIN" cluster up cluster2.toml >task1.out 2>&1 &
TASK1=$!
SLURM_JOB_ID=4242 SLURM_JOB_NODELIST="localhost,127.0.0.1" SLURM_PROCID=0 \
  timeout 120 "$BIN" cluster up cluster2.toml >task0.out 2>&1 || fail "task 0" task0.out task1.out
wait_for 30 "task 1 to end" "! kill -0 $TASK1 2>/dev/null" || { kill "$TASK1"; fail "task 1 still runs" task1.out; }
wait "$TASK1" || fail "task 1 exited $?" task1.out
check_steps run2/metrics.jsonl 3 || fail "metrics.jsonl of the two-task run" task0.out
grep -q "Slurm task 1 on 127.0.0.1: host b" task1.out || fail "task 1 did not take host b" task1.out
grep -q "registered" run2/logs/worker-2.log || fail "host b's worker did not serve the head" task1.out
grep -q '"host": "a"' run2/procs/worker-1.json || fail "task 0 did not start host a's worker" task0.out
echo "ok: two Slurm tasks take the head's and a host's roles"

# Helpers of the cluster test scripts (sourced).

# The treepo binary (TREEPO_BINARY_DIR, set by ctest, else build/release), or a reason.
treepo_binary() {
  b="${TREEPO_BINARY_DIR:-build/release}/cluster/treepo"
  if [ -x "$b" ]; then (cd "$(dirname "$b")" && echo "$(pwd)/treepo"); else echo "no treepo binary at $b"; return 1; fi
}

# fail MESSAGE [LOG...]: the message, the given logs' and the run's logs' tails, exit 1.
fail() {
  msg=$1
  shift
  echo "FAIL: $msg"
  for f in "$@" run/logs/*.log; do
    [ -f "$f" ] && { echo "==== $f"; tail -n 30 "$f"; }
  done
  exit 1
}

# wait_for SECONDS WHAT COMMAND: runs COMMAND (a shell string) until it succeeds.
wait_for() {
  end=$(($(date +%s) + $1))
  while [ "$(date +%s)" -lt "$end" ]; do
    eval "$3" && return 0
    sleep 0.5
  done
  echo "timed out after $1 s waiting for: $2"
  return 1
}

# The tests' tiny base model (1 layer, dim 32; seconds to pretrain) in ./base.
make_tiny_base() {
  "$1" pretrain --out base --steps 20 --batch 8 --dim 32 --hidden 64 --layers 1 --heads 2 \
    --kv-heads 2 --max-seq-len 128 --corpus 200 --eval-problems 0 --threads 1 >pretrain.log 2>&1
}

# A short train config of $1 steps.
write_train_config() {
  cat <<TOML
steps = $1
[rollout]
width = 4
queries_per_step = 2
max_concurrent_queries = 2
segment_tokens = 8
max_depth = 2
[eval]
before = false
after = false
checkpoints = false
[output]
report = false
progress = false
checkpoint_every = 0
TOML
}

# check_steps METRICS N: the step lines are steps 0..N-1, each exactly once.
check_steps() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1]) if l.strip() and "eval" not in json.loads(l)]
want = list(range(int(sys.argv[2])))
if sorted(steps) != want:
    print("steps in %s: %s, want %s" % (sys.argv[1], steps, want))
    sys.exit(1)
PY
}

# print_delay LOG TEXT T0 LABEL: prints LABEL and the ms from T0 (date +%s.%N) to the time
# stamp of LOG's first line holding TEXT.
print_delay() {
  /usr/bin/python3 - "$1" "$2" "$3" "$4" <<'PY'
import datetime, sys
for line in open(sys.argv[1]):
    if sys.argv[2] in line:
        t = datetime.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        print("%s %.0f ms" % (sys.argv[4], (t - float(sys.argv[3])) * 1000))
        break
PY
}

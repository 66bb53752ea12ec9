#!/usr/bin/env bash
# The GPU check: one prepared run for a short lease on a GPU host (whole script well under
# 8 minutes on one H200, so it can run twice in 15).
#
#   scripts/gpu-check.sh            # configure + build (release preset, CUDA), test, bench
#   GPU_CHECK_SKIP_BUILD=1 scripts/gpu-check.sh   # reuse build/release (a second run)
#
# Steps: configure the release preset (CUDA is found from /usr/local/cuda); build only treepo,
# the gpu test programs (target gpu_tests), gpu_decoder_bench, gpu_train_bench and nccl_bench; print
# nvidia-smi; run `ctest -L gpu`; run both benches; print one table of test counts and key
# figures. A missing bench binary or device is reported, not fatal. Every step has a time
# limit inside one budget (GPU_CHECK_BUDGET_S, default 460 s). Exits non-zero when the
# build failed or a gpu test failed. When $OUT is set, everything printed and every bench's
# JSON is also written there (gpu-check.log, ctest-gpu.xml, *.json).
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=build/release
JOBS=${GPU_CHECK_JOBS:-$(nproc)}
LOGDIR=${OUT:-$(mktemp -d /tmp/treepo-gpu-check.XXXXXX)}
mkdir -p "$LOGDIR"
LOG="$LOGDIR/gpu-check.log"
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)

say() { printf '\n=== %s (%ds)\n' "$*" "$(($(date +%s) - START))"; }

# The whole run stays inside GPU_CHECK_BUDGET_S (default 460 s: under 8 minutes with the
# summary): each step gets at most its own limit and at most what is left, keeping 10 s for
# the summary.
BUDGET=${GPU_CHECK_BUDGET_S:-460}
limit() {  # <step's own limit, s>: prints the seconds this step may take (>= 1: `timeout 0`
  local left=$((BUDGET - ($(date +%s) - START) - 10))  # would mean no limit at all)
  ((left < 1)) && left=1
  echo $(($1 < left ? $1 : left))
}

say "gpu-check in $(pwd), logs in $LOGDIR"
git log -1 --format='commit %h %s' 2>/dev/null || true

BUILD_RC=0
if [[ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ]]; then
  say "configure (release preset)"
  if ! timeout "$(limit 180)" cmake --preset release >"$LOGDIR/configure.log" 2>&1; then
    tail -n 40 "$LOGDIR/configure.log"
    BUILD_RC=1
  fi
  grep -E 'treepo: (CUDA backend|NCCL)' "$LOGDIR/configure.log" || true
  if [[ $BUILD_RC == 0 ]]; then
    # Only the targets that exist in this tree (a bench may not be there yet).
    AVAILABLE=$(cmake --build "$BUILD" --target help 2>/dev/null | sed -n 's/^\([A-Za-z0-9_]*\):.*/\1/p')
    TARGETS=()
    for t in treepo gpu_tests gpu_decoder_bench gpu_train_bench nccl_bench; do
      if grep -qx "$t" <<<"$AVAILABLE"; then TARGETS+=("$t"); else echo "target $t: not in this build"; fi
    done
    say "build ${TARGETS[*]} (-j$JOBS)"
    if ! timeout "$(limit 330)" cmake --build "$BUILD" --target "${TARGETS[@]}" -j"$JOBS" >"$LOGDIR/build.log" 2>&1; then
      grep -E 'error|Error' "$LOGDIR/build.log" | head -n 40
      tail -n 20 "$LOGDIR/build.log"
      BUILD_RC=1
    fi
  fi
fi

say "nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
  timeout 30 nvidia-smi || echo "nvidia-smi failed"
else
  echo "nvidia-smi: not installed (no NVIDIA driver on this host?)"
fi

say "ctest -L gpu"
TESTS=0 FAILED=0 SKIPPED=0
if [[ -d "$BUILD" ]]; then
  timeout "$(limit 150)" ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout 120 \
    --output-junit "$LOGDIR/ctest-gpu.xml" 2>&1 | tee "$LOGDIR/ctest-gpu.log"
  if [[ -f "$LOGDIR/ctest-gpu.xml" ]]; then
    # The <testsuite ...> element's attributes (ctest writes one per line).
    attr() { tr '\n\t' '  ' <"$LOGDIR/ctest-gpu.xml" | grep -o "<testsuite [^>]*" | grep -o " $1=\"[0-9]*\"" | head -n1 | tr -dc 0-9; }
    TESTS=$(attr tests) FAILED=$(attr failures) SKIPPED=$(attr skipped)
    TESTS=${TESTS:-0} FAILED=${FAILED:-0} SKIPPED=${SKIPPED:-0}
  else
    echo "ctest wrote no report (killed by its timeout?): counted as a failure"
    FAILED=1
  fi
else
  echo "no build directory $BUILD"
fi
PASSED=$((TESTS - FAILED - SKIPPED))

run_bench() {  # <name> <timeout_s> <args...>
  local name=$1 secs=$2
  shift 2
  local bin
  bin=$(find "$BUILD" -type f -name "$name" -perm -u+x 2>/dev/null | head -n1)
  say "$name"
  if [[ -z "$bin" ]]; then
    echo "$name: not built in this tree; skipped"
    return 0
  fi
  secs=$(limit "$secs")
  if ((secs < 15)); then
    echo "$name: skipped, the time budget is spent"
    return 0
  fi
  timeout "$secs" "$bin" "$@" 2>&1 | tee "$LOGDIR/$name.txt"
  local rc=${PIPESTATUS[0]}
  [[ $rc == 0 ]] || echo "$name: exit code $rc"
}
run_bench nccl_bench 120 --json "$LOGDIR/nccl_bench.json"
run_bench gpu_decoder_bench 120
run_bench gpu_train_bench 90 --steps 5

# ---- the summary table ----
figure() {  # <file> <awk program>: prints the figure or "-"
  [[ -f "$1" ]] || { echo "-"; return; }
  local v
  v=$(awk "$2" "$1")
  echo "${v:--}"
}
AR=$(figure "$LOGDIR/nccl_bench.txt" '$1=="all_reduce" && $6+0>m {m=$6+0} END {if (m) print m}')
BC=$(figure "$LOGDIR/nccl_bench.txt" '$1=="broadcast" && $6+0>m {m=$6+0} END {if (m) print m}')
# The device table's rows (params a plain number), not the host-side lines ("494M params").
W05=$(figure "$LOGDIR/nccl_bench.txt" '$1=="qwen2.5-0.5b" && $2 ~ /^[0-9]+$/ {print $5 " s, " $6 " GB/s (" $7 ")"}')
W15=$(figure "$LOGDIR/nccl_bench.txt" '$1=="qwen2.5-1.5b" && $2 ~ /^[0-9]+$/ {print $5 " s, " $6 " GB/s (" $7 ")"}')
SETUP=$(figure "$LOGDIR/nccl_bench.txt" '/^nccl_bench:/ {sub(/^nccl_bench: /, ""); print; exit}')
JOIN=$(figure "$LOGDIR/nccl_bench.txt" '/^communicator join/ {print $(NF-1); exit}')

say "summary"
{
  printf '%-40s %s\n' "item" "value"
  printf '%-40s %s\n' "build" "$([[ $BUILD_RC == 0 ]] && echo ok || echo FAILED)"
  printf '%-40s %s\n' "gpu tests passed / failed / skipped" "$PASSED / $FAILED / $SKIPPED (of $TESTS)"
  printf '%-40s %s\n' "nccl setup" "$SETUP"
  printf '%-40s %s\n' "nccl communicator join (ms)" "$JOIN"
  printf '%-40s %s\n' "nccl all-reduce peak busbw (GB/s)" "$AR"
  printf '%-40s %s\n' "nccl broadcast peak busbw (GB/s)" "$BC"
  printf '%-40s %s\n' "weight broadcast qwen2.5-0.5b bf16" "$W05"
  printf '%-40s %s\n' "weight broadcast qwen2.5-1.5b bf16" "$W15"
  if [[ -f "$LOGDIR/gpu_decoder_bench.txt" ]]; then
    echo "gpu_decoder_bench (last lines):"
    tail -n 15 "$LOGDIR/gpu_decoder_bench.txt" | sed 's/^/  /'
  else
    printf '%-40s %s\n' "gpu_decoder_bench" "not run"
  fi
  if [[ -f "$LOGDIR/gpu_train_bench.txt" ]]; then
    echo "gpu_train_bench (last lines):"
    tail -n 6 "$LOGDIR/gpu_train_bench.txt" | sed 's/^/  /'
  else
    printf '%-40s %s\n' "gpu_train_bench" "not run"
  fi
  printf '%-40s %s\n' "wall time (s)" "$(($(date +%s) - START))"
} | tee "$LOGDIR/summary.txt"

if [[ $BUILD_RC != 0 || $FAILED != 0 ]]; then
  echo "gpu-check: FAILED"
  exit 1
fi
if [[ $TESTS == 0 ]]; then
  echo "gpu-check: no gpu tests ran"
fi
echo "gpu-check: ok"

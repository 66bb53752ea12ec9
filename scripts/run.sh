#!/usr/bin/env bash
# The main job on the built-in default: installs dependencies, builds (release), then runs
# `treepo train` (pretrains the small base model if missing, runs TreePO RL with a scheduler,
# 2 workers and a learner on loopback, evaluates before and after). Extra arguments go to
# `treepo train`, e.g. `scripts/run.sh --set steps=5`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup_dashboard_assets.sh  # the dashboard's charts (npm; skipped without it)
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
exec build/release/cluster/treepo train "$@"

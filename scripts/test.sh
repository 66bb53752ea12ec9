#!/usr/bin/env bash
# Builds treepo (release preset) and runs the whole CPU test suite with ctest.
# Usage: scripts/test.sh [preset]   (release | debug | asan | tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
scripts/setup.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -LE gpu

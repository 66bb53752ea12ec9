#!/usr/bin/env bash
# Fetches the dashboard's charting library (uPlot, pinned by scheduler/dashboard/web/
# package-lock.json) from npm into build/dashboard_web, where the build embeds it into the
# binary (scheduler/CMakeLists.txt). Idempotent. Without npm or network it says so and exits
# 0; the build then leaves the charts out. Reconfigure after running it.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${TREEPO_DASHBOARD_WEB_DIR:-build/dashboard_web}"
if [[ -f "$dest/node_modules/uplot/dist/uPlot.iife.min.js" ]] &&
   cmp -s scheduler/dashboard/web/package-lock.json "$dest/package-lock.json"; then
  echo "setup_dashboard_assets: present in $dest"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup_dashboard_assets: npm not found; the dashboard is built without its charts"
  exit 0
fi
mkdir -p "$dest"
cp scheduler/dashboard/web/package.json scheduler/dashboard/web/package-lock.json "$dest/"
if npm ci --no-audit --no-fund --prefix "$dest"; then
  echo "setup_dashboard_assets: installed into $dest"
else
  echo "setup_dashboard_assets: npm ci failed; the dashboard is built without its charts"
fi

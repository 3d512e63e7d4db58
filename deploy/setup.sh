#!/usr/bin/env bash
# Sets up a fresh machine: the project's virtual environment, the Debian packages the lab uses,
# and the lab's Kubernetes binaries (built from pinned Go modules, cached per version).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
# Editable installs of the product (with its test tools) and of the lab, its own distribution
# (deploy/pyproject.toml: the `rollout-lab` command). Redone only when a pyproject.toml changed, so
# a second run neither rebuilds them nor swaps the packages under a running process.
stamp=".venv/.installed-$(cat pyproject.toml deploy/pyproject.toml | sha256sum | cut -c1-16)"
if ! [ -e "$stamp" ]; then
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.[test]'
  .venv/bin/pip install --quiet -e deploy/
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# `--python-only`: stop here (the environment alone), so CI lints and runs the unit tests before
# the slow builds below.
[ "${1:-}" = "--python-only" ] && exit 0

# Debian packages: Prometheus for the lab, an sshd so Git-over-SSH is tested against a real server,
# headless Chromium and its chromedriver for the browser test of `rollout ui` (never downloaded).
if ! command -v prometheus >/dev/null 2>&1 || ! [ -x /usr/sbin/sshd ] || ! [ -x /usr/bin/chromium ] \
  || ! [ -x /usr/bin/chromedriver ]; then
  echo "setup: installing Debian's prometheus, openssh-server, chromium and chromium-driver"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus openssh-server chromium chromium-driver >/dev/null
  # The package starts a system service we do not want; the lab runs its own Prometheus.
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  $SUDO service prometheus stop >/dev/null 2>&1 || true  # without systemd: the init script, by its pidfile
fi

# The lab's Go binaries (kube-apiserver/-controller-manager/-scheduler, etcd, kwok) from pinned
# modules, cached in ${ROLLOUT_LAB_CACHE:-~/.cache/regional-rollout/lab}. Cold: several minutes
# (about 6.5 on 2 cores), with a progress line every 10 s; afterwards a no-op.
if ! command -v go >/dev/null 2>&1; then
  echo "setup: the lab build needs Go >= 1.26 on PATH" >&2
  exit 1
fi
# The product's manifest renderers (helm, kustomize) from the pinned modules in deploy/tools/,
# cached in ${ROLLOUT_TOOLS_CACHE:-~/.cache/regional-rollout/tools}: validating a repository with a
# Helm or Kustomize app runs them. Cold: a few minutes; afterwards a no-op.
echo "setup: building helm and kustomize (cached per version)"
bash deploy/tools/build.sh
echo "setup: building the lab's Kubernetes binaries (cached per version)"
.venv/bin/rollout-lab build

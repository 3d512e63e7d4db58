#!/usr/bin/env bash
# The one command of the README: set up a fresh machine, then run the lab demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
exec .venv/bin/rollout-lab demo "$@"

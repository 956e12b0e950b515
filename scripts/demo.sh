#!/usr/bin/env bash
# One command on a fresh machine: install xzctl and run its main job on the bundled example fleet:
# the static plan, the rendered configs of a region, a local Prometheus with the fleet simulator, and the
# live verdicts read from it. Needs root for apt-get (only when prometheus is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[all]'

export XZCTL_STATE_DIR="${XZCTL_STATE_DIR:-$PWD/.xzctl}"
out="${XZCTL_DEMO_OUT:-$PWD/out}"
rm -rf "$out"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "xzctl fleet validate";            xzctl fleet validate
step "xzctl fleet plan";                xzctl fleet plan
step "xzctl render region beijing";     xzctl render region beijing --out "$out/beijing"

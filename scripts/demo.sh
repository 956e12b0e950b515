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
rm -rf "$out" && mkdir -p "$out"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "xzctl fleet validate";            xzctl fleet validate
step "xzctl fleet plan";                xzctl fleet plan
step "xzctl render region beijing";     xzctl render region beijing --out "$out/beijing"
step "xzctl render manifests beijing";  xzctl render manifests beijing --out "$out/manifests-beijing"
step "xzctl render alerts";             xzctl render alerts --out "$out/alerts"
# every image the example pins was built here or is marked external: a failure stops the demo
step "xzctl images verify";             xzctl images verify

# The live half: a real Prometheus on 127.0.0.1 scraping the fleet simulator, with a day of history. `sandbox up`
# returns once every edge node is scraped often enough for a verdict, so the checks follow at once.
trap 'xzctl sandbox down >/dev/null 2>&1 || true' EXIT
step "xzctl sandbox up --example --history 1d"; xzctl sandbox up --example --history 1d --scrape-interval 5

# Verdicts exit 1 (crit) or 3 (unknown) by design; the demo shows them and goes on.
verdict() { local rc=0; "$@" || rc=$?; echo "exit code $rc (0 ok, 1 a check failed, 3 unknown: see README)"; }
step "xzctl capacity report";           verdict xzctl capacity report
step "xzctl check failover";            verdict xzctl check failover
step "xzctl check cost";                verdict xzctl check cost
step "xzctl sandbox down";              xzctl sandbox down
trap - EXIT

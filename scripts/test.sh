#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs the linters and the test suite.
# Needs root for apt-get (CI and the development machines run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
for tool in mmdebstrap buildah espeak-ng; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
# checkov pins protobuf/packaging versions that pulumi cannot live with: it gets a virtualenv of its own.
export XZCTL_CHECKOV="${XZCTL_CHECKOV:-/opt/checkov-venv/bin/checkov}"
if [ ! -x "$XZCTL_CHECKOV" ]; then
  echo "installing checkov into $(dirname "$(dirname "$XZCTL_CHECKOV")")"
  python3 -m venv "$(dirname "$(dirname "$XZCTL_CHECKOV")")"
  "$(dirname "$XZCTL_CHECKOV")/pip" install -q --disable-pip-version-check 'checkov>=3.2'
fi

# The engine tier's binaries (pulumi, its Kubernetes provider, kube-*, kwok): built once into a cache outside the
# clone, seconds when present. XZCTL_SKIP_ENGINE=1 is the only way to run without them (engine tests then skip).
if [ "${XZCTL_SKIP_ENGINE:-}" != "1" ]; then
  command -v etcd >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }
  echo "== engine";     bash scripts/engine.sh
fi
echo "== ruff";         ruff check .
echo "== mypy";         mypy
echo "== import-linter"; lint-imports
# A skipped test of a tier (live, ssh, engine, images, tools) fails the run unless XZCTL_SKIP_<TIER>=1 says it is meant.
# The fast suite runs on both cores (pytest-xdist); the tiers then run in one process, so each session-wide sandbox
# and engine starts once. XZCTL_FAST_ONLY=1 runs the fast suite alone. Extra arguments go to both runs.
fast='not live and not ssh and not engine and not images and not tools'
rc=0
echo "== pytest: fast suite"
python3 -m pytest -q -p no:cacheprovider --durations=15 -n 2 -m "$fast" "$@" || rc=$?
tiers_rc=5
if [ "${XZCTL_FAST_ONLY:-}" != "1" ]; then
  echo "== pytest: tiers"
  tiers_rc=0
  python3 -m pytest -q -p no:cacheprovider --durations=15 -m "not ($fast)" "$@" || tiers_rc=$?
fi
if [ "$rc" -eq 5 ] && [ "$tiers_rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
[ "$rc" -eq 5 ] && rc=0  # one of the two runs may select nothing (e.g. a path given with no tier test in it)
[ "$tiers_rc" -eq 5 ] && tiers_rc=0
[ "$rc" -ne 0 ] && exit "$rc"
exit "$tiers_rc"

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
echo "== pytest"
# A skipped test of a tier (live, ssh, engine, tools) fails the run unless XZCTL_SKIP_<TIER>=1 says it is meant.
# The fast suite alone: scripts/test.sh -m "not live and not ssh and not engine and not tools"
# Workers (pytest-xdist): the tiers mostly wait on real servers, so more workers than cores overlap the waits; each
# tier module keeps to one worker (tests/fixtures/distribution.py). XZCTL_WORKERS=0 runs in one process.
# Without arguments the `images` tier runs after the rest, alone: it judges real inference by its latency, which
# other workers' CPU load would distort.
pytest_run() {
  local rc=0
  python3 -m pytest -q -p no:cacheprovider --durations=15 "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    rc=1
  fi
  return "$rc"
}
workers=(-n "${XZCTL_WORKERS:-4}" --dist loadgroup)
if [ $# -gt 0 ]; then
  pytest_run "${workers[@]}" "$@"
else
  rc=0
  pytest_run "${workers[@]}" -m "not images" || rc=$?
  pytest_run -m images || rc=$?
  exit "$rc"
fi

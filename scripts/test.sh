#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs the linters and the test suite.
# Needs root for apt-get (CI and the development machines run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
# Two checkouts may run this at once on one machine (CI beside a developer's run): the set-up below writes to the one
# Python, apt and the caches in ~/.cache/xzctl, so it runs under a lock shared by every checkout; and every process of
# this run imports this checkout's xzctl, whichever checkout the shared editable install points to.
mkdir -p "$HOME/.cache/xzctl"
exec 9>"$HOME/.cache/xzctl/setup.lock"
flock --timeout 3600 9 || { echo "another checkout's set-up held $HOME/.cache/xzctl/setup.lock for an hour" >&2; exit 1; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
# ffmpeg/ffprobe: the upstream xiaozhi server decodes TTS audio with them; libopus0: the test devices' Opus encoder;
# haproxy: the L4 balancer in front of the real node's xiaozhi server processes
for tool in mmdebstrap buildah espeak-ng ffmpeg haproxy; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
[ -e /usr/lib/x86_64-linux-gnu/libopus.so.0 ] || ldconfig -p | grep -q libopus.so.0 || missing+=(libopus0)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
# The upstream xiaozhi server's venv for the sandbox's real node (inference_images/xiaozhi-server/build.yaml's
# hash-pinned wheels): built once into ~/.cache/xzctl/xiaozhi-server, seconds when present.
echo "== xiaozhi server venv: $(python3 -m xzctl.sandbox.xiaozhi_env)"
# pulumi-policy pins protobuf 5; the pulumi SDK here runs protobuf 6, whose runtime reads that generated code: it is
# installed without its pins so the policy-pack test runs (Pulumi builds the pack's own venv from policy/).
python3 -m pip install -q --disable-pip-version-check --no-deps 'pulumi-policy>=1.13'
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
exec 9>&-  # set-up done: the other checkout's may run
echo "== ruff";         ruff check .
echo "== mypy";         mypy
echo "== import-linter"; lint-imports
echo "== pytest"
# A skipped test of a tier (live, ssh, engine, images, tools) fails the run unless XZCTL_SKIP_<TIER>=1 says it is meant.
# Three runs (pytest-xdist): the fast suite on both cores; then the tiers, which mostly wait on real servers, over
# XZCTL_WORKERS workers (6) so the waits overlap, the tests of a module fixture keeping to one worker and the engine
# and images tiers to one group each, in the start order tests/fixtures/distribution.py gives them (hence
# --no-loadscope-reorder); then, alone, the tests marked `latency`, which judge real inference services by the
# latency they measure. XZCTL_FAST_ONLY=1 runs the fast suite alone. Extra arguments go to every run.
fast='not live and not ssh and not engine and not images and not tools'
export XZCTL_TEST_RUN="test-sh-$$-$(date +%s%N)"  # inherited by every process the runs start: see == leftovers
rc=0
selected=0
pytest_run() {  # one run; a run that selects nothing (a path with no tier test in it) is fine unless all do
  local run_rc=0
  echo "== pytest $*"
  python3 -m pytest -q -p no:cacheprovider --durations=15 "$@" || run_rc=$?
  if [ "$run_rc" -eq 5 ]; then return 0; fi
  selected=1
  if [ "$run_rc" -ne 0 ]; then rc=$run_rc; fi
}
pytest_run -n 2 -m "$fast" "$@"
if [ "${XZCTL_FAST_ONLY:-}" != "1" ]; then
  pytest_run -n "${XZCTL_WORKERS:-6}" --dist loadgroup --no-loadscope-reorder -m "not ($fast) and not latency" "$@"
  pytest_run -m latency "$@"
fi
# No process started under the runs may outlive them (a leaked engine plugin holds a port and memory): each pytest
# process checks its own at its session's end (tests/fixtures/leftovers.py); this catches the rest.
echo "== leftovers"
python3 -c 'import sys; from tests.fixtures.leftovers import outlived; left = outlived("XZCTL_TEST_RUN", sys.argv[1])
print(*(f"outlived the test run (now killed): {p}" for p in left), sep="\n", file=sys.stderr); sys.exit(bool(left))' \
  "$XZCTL_TEST_RUN" || rc=1
if [ "$selected" -eq 0 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"

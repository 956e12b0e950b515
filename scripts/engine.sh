#!/usr/bin/env bash
# Builds the local "engine" the engine test tier and air-gapped sites use: the pulumi CLI, the pulumi-kubernetes
# provider plugin, kube-apiserver/controller-manager/scheduler, kwok and thanos (the sandbox's per-region Prometheus
# sidecars and global query view), from the Go module proxy (etcd comes from
# Debian's etcd-server). Users install Pulumi the normal way; this exists because pulumi.com downloads are not
# reachable here, only the module proxy, which serves an allow-list of versions (the pins below are the ones it serves).
#
# Everything goes into a cache outside the clone. Each binary is stamped with a hash of its recipe (the bash function
# that builds it plus its pins), so a run with everything present and matching takes seconds.
# Output: the binaries in "$ENGINE_BIN" (printed at the end); put that folder first on PATH.
set -euo pipefail

CACHE="${XZCTL_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xzctl/engine}"
ENGINE_BIN="$CACHE/bin"
SRC="$CACHE/src"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
# Go's caches (~14 GB) stay with the engine cache, not in the user's ~/go.
export GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gobuild" GOFLAGS="-mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
PAR=(-p 2) # two packages at a time: the provider and kube builds need ~2 GB each at this setting

PULUMI_VERSION=v3.274.1
K8S_PROVIDER_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4
K8S_PROVIDER_VERSION=v4.0.0-20260115033456-f47bc2d6f199
K8S_PROVIDER_SDK=v4.22.2
KUBE_VERSION=v1.37.2
KUBE_STAGING=v0.37.2
KWOK_VERSION=v0.8.0
THANOS_VERSION=v0.42.4 # v0.42.5 needs go >= 1.26.10

mkdir -p "$ENGINE_BIN" "$SRC"

# A fresh wrapper module directory.
wrapper() {
  rm -rf "$SRC/$1" && mkdir -p "$SRC/$1" && cd "$SRC/$1" && "$GO" mod init "xzctl.local/engine/$1" >/dev/null 2>&1
}

recipe_pulumi() {
  wrapper pulumi
  "$GO" mod edit -require="github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" \
    -require="github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" \
    -replace=github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
  "$GO" get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@$PULUMI_VERSION"
  "$GO" build "${PAR[@]}" -o "$1" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}

recipe_pulumi_resource_kubernetes() {
  local mod
  mod="$("$GO" mod download -json "$K8S_PROVIDER_MODULE@$K8S_PROVIDER_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$SRC/k8s-provider" && cp -r "$mod" "$SRC/k8s-provider" && chmod -R u+w "$SRC/k8s-provider"
  cd "$SRC/k8s-provider"
  # The module's go.mod points its SDK at the repository's ../sdk, absent from the module zip.
  "$GO" mod edit -dropreplace=github.com/pulumi/pulumi-kubernetes/sdk/v4 \
    -require="github.com/pulumi/pulumi-kubernetes/sdk/v4@$K8S_PROVIDER_SDK" -toolchain=none
  # The main package embeds two generated files the zip lacks.
  python3 - "${K8S_PROVIDER_VERSION#v}" <<'EOF'
import json, sys
d = "cmd/pulumi-resource-kubernetes/"
schema = json.load(open(d + "schema.json"))
schema["version"] = sys.argv[1]
json.dump(schema, open(d + "schema-embed.json", "w"), separators=(",", ":"))
json.dump(json.load(open(d + "terraform-mapping.json")), open(d + "terraform-mapping-embed.json", "w"), separators=(",", ":"))
EOF
  "$GO" build "${PAR[@]}" -o "$1" \
    -ldflags "-s -w -X $K8S_PROVIDER_MODULE/pkg/version.Version=$K8S_PROVIDER_VERSION" \
    ./cmd/pulumi-resource-kubernetes
}

recipe_kube() {
  local gomod
  wrapper kube
  gomod="$("$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 with ./staging replaces: map each to the published release.
  local edits=(-require="k8s.io/kubernetes@$KUBE_VERSION")
  for m in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod"); do
    case "$m" in k8s.io/sample-cli-plugin | k8s.io/sample-controller) continue ;; esac
    edits+=(-replace="$m=$m@$KUBE_STAGING")
  done
  "$GO" mod edit "${edits[@]}"
  local cmds=() c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do cmds+=("k8s.io/kubernetes/cmd/$c"); done
  "$GO" get "${cmds[@]/%/@$KUBE_VERSION}"
  local v=k8s.io/component-base/version minor=${KUBE_VERSION#v1.}
  mkdir -p "$1.d"
  "$GO" build "${PAR[@]}" -o "$1.d/" \
    -ldflags "-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=${minor%%.*}" "${cmds[@]}"
}

recipe_kwok() {
  GOFLAGS= GOBIN="$1.d" "$GO" install "${PAR[@]}" -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$1.d/kwok" "$1"
}

recipe_thanos() {
  local mod v=github.com/prometheus/common/version
  mod="$("$GO" mod download -json "github.com/thanos-io/thanos@$THANOS_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  # Its go.mod has replace directives, which `go install module@version` refuses: build inside a copy of the module.
  rm -rf "$SRC/thanos" && cp -r "$mod" "$SRC/thanos" && chmod -R u+w "$SRC/thanos"
  cd "$SRC/thanos"
  # The tags of its .promu.yml: without slicelabels, Prometheus' labels have another layout than the one Thanos casts
  # them to (unsafe), and a sidecar's Info answer has a garbage size (a panic in gRPC's buffer pool).
  "$GO" build "${PAR[@]}" -tags netgo,slicelabels -o "$1" \
    -ldflags "-s -w -X $v.Version=${THANOS_VERSION#v} -X $v.Revision=$THANOS_VERSION -X $v.Branch=release" ./cmd/thanos
}

# recipe name -> the binaries it produces
declare -A OUTPUTS=(
  [kwok]="kwok"
  [kube]="kube-apiserver kube-controller-manager kube-scheduler"
  [pulumi]="pulumi"
  [pulumi_resource_kubernetes]="pulumi-resource-kubernetes"
  [thanos]="thanos"
)
ORDER=(kwok kube pulumi pulumi_resource_kubernetes thanos)

recipe_hash() {
  {
    declare -f wrapper "recipe_$1"
    echo "$PULUMI_VERSION $K8S_PROVIDER_MODULE $K8S_PROVIDER_VERSION $K8S_PROVIDER_SDK $KUBE_VERSION $KUBE_STAGING $KWOK_VERSION"
    # Later recipes hash only their own pin, so adding one leaves the binaries already built valid.
    [ "$1" != thanos ] || echo "$THANOS_VERSION"
    "$GO" version
  } | sha256sum | cut -d' ' -f1
}

up_to_date() { # $1 recipe, $2 hash
  local b
  for b in ${OUTPUTS[$1]}; do
    [ -x "$ENGINE_BIN/$b" ] && [ "$(cat "$ENGINE_BIN/$b.recipe" 2>/dev/null)" = "$2" ] || return 1
  done
}

# Arguments: only these recipes (e.g. `bash scripts/engine.sh kube kwok`); default: all of them.
[ $# -gt 0 ] && ORDER=("$@")
built=()
total_start=$SECONDS
for r in "${ORDER[@]}"; do
  [ -n "${OUTPUTS[$r]:-}" ] || { echo "engine: no recipe $r (one of: ${!OUTPUTS[*]})" >&2; exit 2; }
  h="$(recipe_hash "$r")"
  # One build of a recipe at a time: a second run waits, then finds it up to date.
  exec {lock}>"$CACHE/.lock-$r"
  flock "$lock"
  if up_to_date "$r" "$h"; then
    echo "engine: $r up to date"
    exec {lock}>&-
    continue
  fi
  echo "engine: building $r ..."
  start=$SECONDS
  tmp="$CACHE/tmp-$r"
  rm -rf "$tmp" "$tmp.d"
  (recipe_"$r" "$tmp")
  for b in ${OUTPUTS[$r]}; do
    if [ -x "$tmp" ] && [ "${OUTPUTS[$r]}" = "$b" ]; then src="$tmp"; else src="$tmp.d/$b"; fi
    mv -f "$src" "$ENGINE_BIN/$b"
    echo "$h" >"$ENGINE_BIN/$b.recipe"
  done
  rm -rf "$tmp.d"
  echo "engine: built $r (${OUTPUTS[$r]}) in $((SECONDS - start)) s"
  exec {lock}>&-
  built+=("$r")
done
etcd_bin="$(command -v etcd || true)"
[ -n "$etcd_bin" ] || echo "engine: etcd missing: apt-get install -y etcd-server" >&2
echo "engine: ${#built[@]} built (${built[*]:-none}) in $((SECONDS - total_start)) s; binaries in $ENGINE_BIN"

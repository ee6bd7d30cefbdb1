#!/usr/bin/env bash
# Builds the control plane's binaries from their official Go modules, once per machine: etcd,
# kube-apiserver, kube-controller-manager and kube-scheduler through the wrapper modules in go/;
# with `go install` at a pinned version, toxiproxy's server (network faults between a client and a
# server, e.g. in front of the apiserver) and kwok (fake nodes: pods "run" without a kubelet), whose
# stages (node and pod lifecycles, shipped in its module) go beside it as kwok-stages.yaml.
# Binaries are cached outside the repository, keyed by what decides their content (the wrapper
# module, which pins the upstream version, and the link flags; or the pinned module version), so a
# rebuild happens only when one of those changes. Concurrent runs wait for each other (flock).
# LOCAL_CONTROLPLANE_CACHE_DIR names the cache (default: $XDG_CACHE_HOME/local-controlplane).
# Arguments: which binaries to build (default: all of etcd kube-apiserver kube-controller-manager
# kube-scheduler toxiproxy kwok).
# Prints the directory holding the binaries on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${LOCAL_CONTROLPLANE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/local-controlplane}"

# toxiproxy's version list on the module proxy stops at v2.5.0, but later tags are served when
# asked for exactly.
TOXIPROXY_MODULE="github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0"
KWOK_MODULE="sigs.k8s.io/kwok/cmd/kwok@v0.8.0"
# kwok's stages from its module: a node becomes Ready at once and keeps its lease; a pod becomes
# Running and Ready once scheduled, and goes when deleted.
KWOK_STAGES=(node/fast node/heartbeat-with-lease pod/fast)

# Version stamps for Kubernetes binaries: without them they report `v0.0.0-master+$Format:%H$`,
# which `kubectl version` cannot parse. The version is the k8s.io/kubernetes the wrapper requires.
kubernetes_ldflags() {
  local version
  version="$(sed -n 's#^[[:space:]]*k8s.io/kubernetes v\([0-9][^[:space:]]*\)$#\1#p' "$1/go.mod" | head -n1)"
  [[ -n "$version" ]] || { echo "no k8s.io/kubernetes version in $1/go.mod" >&2; exit 1; }
  local major="${version%%.*}" rest="${version#*.}"
  local minor="${rest%%.*}"
  local pkg=k8s.io/component-base/version
  echo "-X $pkg.gitVersion=v$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
}

# Builds into a fresh directory, then moves it to $out (so a cached directory is always complete).
# Usage: finish NAME OUT TMP START_SECONDS
finish() {
  local name="$1" out="$2" tmp="$3" start="$4"
  rm -rf "$out" && mv "$tmp" "$out"
  echo "$name: built in $((SECONDS - start))s" >&2
}

build_module() {
  local name="$1" src="$here/go/$1"
  local ldflags="-s -w"
  case "$name" in
    kube-*) ldflags="$ldflags $(kubernetes_ldflags "$src")" ;;
  esac
  local key
  key="$( (cat "$src/go.mod" "$src/go.sum" "$src/main.go"; echo "$ldflags") | sha256sum | cut -c1-16)"
  local out="$cache/$name-$key"
  if [[ -x "$out/$name" ]]; then
    echo "$name: cached at $out" >&2
  else
    echo "$name: building from Go modules (first time on this machine; takes minutes)…" >&2
    local tmp start=$SECONDS
    tmp="$(mktemp -d "$out.tmp.XXXXXX")"
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="$ldflags" -o "$tmp/$name" .)
    finish "$name" "$out" "$tmp" "$start"
  fi
  ln -sfn "$out/$name" "$cache/bin/$name"
}

# A tool built with `go install MODULE/PATH@VERSION`, installed as NAME.
build_installed() {
  local name="$1" module="$2"
  local key
  key="$(echo "$module -s -w" | sha256sum | cut -c1-16)"
  local out="$cache/$name-$key"
  if [[ -x "$out/$name" ]]; then
    echo "$name: cached at $out" >&2
  else
    echo "$name: building $module (first time on this machine)…" >&2
    local tmp start=$SECONDS
    tmp="$(mktemp -d "$out.tmp.XXXXXX")"
    CGO_ENABLED=0 GOBIN="$tmp/gobin" go install -trimpath -ldflags='-s -w' "$module"
    mv "$tmp/gobin/$(basename "${module%@*}")" "$tmp/$name" && rmdir "$tmp/gobin"
    [[ "$name" != kwok ]] || kwok_stages "$module" >"$tmp/kwok-stages.yaml"
    finish "$name" "$out" "$tmp" "$start"
  fi
  ln -sfn "$out/$name" "$cache/bin/$name"
  [[ "$name" != kwok ]] || ln -sfn "$out/kwok-stages.yaml" "$cache/bin/kwok-stages.yaml"
}

# The stage documents of KWOK_STAGES from kwok's module (as downloaded by `go install`), one file.
kwok_stages() {
  local dir stage file
  dir="$(GOFLAGS=-mod=mod go mod download -json "${1%%/cmd/*}@${1##*@}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  for stage in "${KWOK_STAGES[@]}"; do
    for file in "$dir/kustomize/stage/$stage"/*.yaml; do
      [[ "$(basename "$file")" == kustomization.yaml ]] && continue
      echo "---"
      cat "$file"
    done
  done
}

mkdir -p "$cache/bin"
exec 9>"$cache/.build.lock"
flock 9
if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  targets=(etcd kube-apiserver kube-controller-manager kube-scheduler toxiproxy kwok)
fi
for t in "${targets[@]}"; do
  case "$t" in
    toxiproxy) build_installed toxiproxy "$TOXIPROXY_MODULE" ;;
    kwok) build_installed kwok "$KWOK_MODULE" ;;
    *) build_module "$t" ;;
  esac
done
echo "$cache/bin"

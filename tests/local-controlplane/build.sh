#!/usr/bin/env bash
# Builds etcd and kube-apiserver from their official Go modules, once per machine.
# Binaries are cached outside the repository, keyed by the wrapper module's content (which pins the
# upstream version), so a rebuild happens only when a version changes.
# LOCAL_CONTROLPLANE_CACHE_DIR names the cache (default: $XDG_CACHE_HOME/local-controlplane).
# Arguments: which binaries to build (default: etcd kube-apiserver).
# Prints the directory holding the binaries on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${LOCAL_CONTROLPLANE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/local-controlplane}"

build_one() {
  local name="$1" src="$here/go/$1"
  local key
  key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)"
  local out="$cache/$name-$key"
  if [[ -x "$out/$name" ]]; then
    echo "$name: cached at $out" >&2
  else
    echo "$name: building from Go modules (first time on this machine; takes minutes)…" >&2
    mkdir -p "$out.tmp"
    local start=$SECONDS
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$out.tmp/$name" .)
    rm -rf "$out" && mv "$out.tmp" "$out"
    echo "$name: built in $((SECONDS - start))s" >&2
  fi
  ln -sfn "$out/$name" "$cache/bin/$name"
}

mkdir -p "$cache/bin"
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=(etcd kube-apiserver); fi
for t in "${targets[@]}"; do build_one "$t"; done
echo "$cache/bin"

#!/usr/bin/env bash
# Builds krew and its manifest validator (sigs.k8s.io/krew, the version below) from the Go module
# proxy once per machine, cached under passport's cache directory, for the krew packaging test
# (tests/e2e/packaging.rs). Concurrent runs wait for each other (flock). Prints the directory holding
# `krew` and `validate-krew-manifest` on stdout; progress goes to stderr.
set -euo pipefail

version=v0.4.3
cache="${PASSPORT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/passport}"
out="$cache/krew-$version"

mkdir -p "$cache"
exec 9>"$cache/krew.lock"
flock 9
if [[ -x "$out/krew" && -x "$out/validate-krew-manifest" ]]; then
  echo "krew: cached at $out" >&2
else
  echo "krew: building krew $version from Go modules (first time on this machine; seconds)…" >&2
  start=$SECONDS
  tmp="$(mktemp -d "$out.tmp.XXXXXX")"
  (cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install -trimpath -ldflags="-s -w" \
    "sigs.k8s.io/krew/cmd/krew@$version" "sigs.k8s.io/krew/cmd/validate-krew-manifest@$version")
  rm -rf "$out" && mv "$tmp" "$out"
  echo "krew: built in $((SECONDS - start))s" >&2
fi
echo "$out"

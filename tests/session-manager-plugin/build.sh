#!/usr/bin/env bash
# Builds AWS's session-manager-plugin (the real client of the Session Manager data channel, see
# main.go) once per machine, cached under passport's cache directory and keyed by the module's
# files, so it is rebuilt only when they change. Concurrent runs wait for each other (flock).
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PASSPORT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/passport}"
ldflags="-s -w"
key="$( (cat "$here/go.mod" "$here/go.sum" "$here/main.go"; echo "$ldflags") | sha256sum | cut -c1-16)"
out="$cache/session-manager-plugin-$key"

mkdir -p "$cache"
exec 9>"$cache/session-manager-plugin.lock"
flock 9
if [[ -x "$out/session-manager-plugin" ]]; then
  echo "session-manager-plugin: cached at $out" >&2
else
  echo "session-manager-plugin: building from Go modules (first time on this machine; a minute or two)…" >&2
  start=$SECONDS
  tmp="$(mktemp -d "$out.tmp.XXXXXX")"
  (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="$ldflags" -o "$tmp/session-manager-plugin" .)
  rm -rf "$out" && mv "$tmp" "$out"
  echo "session-manager-plugin: built in $((SECONDS - start))s" >&2
fi
echo "$out/session-manager-plugin"

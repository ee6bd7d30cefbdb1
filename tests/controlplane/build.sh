#!/usr/bin/env bash
# passport's control plane binaries: etcd and kube-apiserver as the reusable harness builds them
# (tests/local-controlplane/build.sh), cached under passport's cache directory, once per machine.
# Prints the directory holding the binaries on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LOCAL_CONTROLPLANE_CACHE_DIR="${PASSPORT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/passport}/controlplane"
exec bash "$here/../local-controlplane/build.sh" "$@"

#!/usr/bin/env bash
# Runs passport locally: a real kube-apiserver + etcd on loopback with passport's CRDs, the operator
# against it, and the examples applied. Prints how to point kubectl at it; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
export PASSPORT_CONTROLPLANE_BIN="$(bash tests/controlplane/build.sh)"
cargo build --quiet --package passport-operator --bin passport-operator
exec cargo run --quiet --package passport-tests --bin passport-dev -- "$@"

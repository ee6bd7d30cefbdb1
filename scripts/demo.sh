#!/usr/bin/env bash
# Runs passport locally: a real kube-apiserver + etcd on loopback with passport's CRDs, the operator
# against it, and the examples applied; alice logs in to the instance through Session Manager (AWS's
# session-manager-plugin and the emulator's data channel), or directly with --direct. Writes
# .passport-dev/env.sh and alice.env, bob.env, carol.env to continue from any shell; Ctrl-C stops
# everything (--no-wait: stop after the walkthrough).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
export PASSPORT_CONTROLPLANE_BIN="$(bash tests/controlplane/build.sh)"
# AWS's session-manager-plugin: the demo reaches its instance through Session Manager (--direct: not).
export PASSPORT_SSM_PLUGIN_BIN="$(bash tests/session-manager-plugin/build.sh)"
cargo build --quiet --package passport-operator --bin passport-operator
exec cargo run --quiet --package passport-tests --bin passport-dev -- "$@"

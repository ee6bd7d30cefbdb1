#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy with warnings denied, unit tests, and the end-to-end
# suite against a real kube-apiserver + etcd (built from their Go modules once per machine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
export PASSPORT_CONTROLPLANE_BIN="$(bash tests/controlplane/build.sh)"
# helm and kube-score for the chart's checks (tests/e2e/chart.rs: lint, drift of deploy/, kube-score,
# schema; chart_install.rs: helm install on the local control plane), built once per machine.
export PASSPORT_TOOLS_BIN="$(bash tests/tools/build.sh)"
# AWS's session-manager-plugin, the real client of the Session Manager data channel (tests/session-manager-plugin/).
export PASSPORT_SSM_PLUGIN_BIN="$(bash tests/session-manager-plugin/build.sh)"

echo "--- cargo fmt --check" >&2
cargo fmt --all --check
echo "--- cargo clippy (warnings denied)" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "--- cargo test" >&2
cargo test --workspace --locked

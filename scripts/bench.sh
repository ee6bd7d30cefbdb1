#!/usr/bin/env bash
# passport's bench: starts its own stack (kube-apiserver + etcd, moto with 100 instant SSM agents,
# the operator) and prints one table, each figure beside its target, written as JSON to
# target/bench/bench.json (or $PASSPORT_BENCH_JSON). Exits non-zero when a target is missed.
#
#   scripts/bench.sh [--size smoke|full]
#
# smoke (default, ~4 min): 30 one at a time, a burst of 100, 300 live over a 30 s soak.
# full: 100 one at a time, a burst of 1,000, 10,000 live over a 10 min soak.
# The measuring is the ignored e2e trial bench_scale::table (tests/e2e/bench_scale.rs). With
# PASSPORT_BIN_DIR set, it runs the operator and CLI binaries found there instead of building them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

size=smoke
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size="${2:?--size needs smoke or full}"; shift 2 ;;
    --size=*) size="${1#--size=}"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$size" in smoke|full) ;; *) echo "bench.sh: --size is smoke or full, not $size" >&2; exit 2 ;; esac

export PASSPORT_CONTROLPLANE_BIN="${PASSPORT_CONTROLPLANE_BIN:-$(bash tests/controlplane/build.sh)}"
export PASSPORT_BENCH_SIZE="$size"
json="${PASSPORT_BENCH_JSON:-$PWD/target/bench/bench.json}"
export PASSPORT_BENCH_JSON="$json"
rm -f "$json"
cargo test -p passport-tests --test e2e -- --ignored --exact bench_scale::table --nocapture
python3 - "$json" <<'PY'
import json, sys
table = json.load(open(sys.argv[1]))
missed = [f["name"] for f in table["figures"] if f["met"] is False]
print(f"bench ({table['size']}): {'every target met' if not missed else 'missed: ' + '; '.join(missed)}")
sys.exit(1 if missed else 0)
PY

#!/usr/bin/env bash
# passport's bench: starts its own stack (kube-apiserver + etcd, moto with 100 instant SSM agents,
# the operator) and prints one table, each figure beside its target, written as JSON to
# target/bench/bench.json (or $PASSPORT_BENCH_JSON). Exits non-zero when a target is missed.
#
#   scripts/bench.sh [--size smoke|full] [--debug]
#
# It measures the operator and CLI as they ship: release builds (what scripts/image.sh packages),
# built first into target/release; --debug measures the debug builds instead.
# smoke (default, ~4 min): 30 one at a time, a burst of 100, 300 live over a 30 s soak.
# full: 100 one at a time, a burst of 1,000, 10,000 live over a 10 min soak.
# The measuring is the ignored e2e trial bench_scale::table (tests/e2e/bench_scale.rs). With
# PASSPORT_BIN_DIR set, it runs the operator and CLI binaries found there instead of building them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

size=smoke
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug; shift ;;
    --size) size="${2:?--size needs smoke or full}"; shift 2 ;;
    --size=*) size="${1#--size=}"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$size" in smoke|full) ;; *) echo "bench.sh: --size is smoke or full, not $size" >&2; exit 2 ;; esac

export PASSPORT_CONTROLPLANE_BIN="${PASSPORT_CONTROLPLANE_BIN:-$(bash tests/controlplane/build.sh)}"
if [ "$profile" = release ] && [ -z "${PASSPORT_BIN_DIR:-}" ]; then
  echo "bench.sh: building the operator and the CLI for release…" >&2
  cargo build --release --locked -p passport-operator -p kubectl-passport
  export PASSPORT_BIN_DIR="$PWD/target/release"
fi
export PASSPORT_BENCH_PROFILE="$profile"
# moto's line per request would cost it more CPU than many requests do, on the cores the bench shares.
export PASSPORT_MOTO_REQUEST_LOG=0
# The operator's allocator options, as its image sets them (scripts/image.sh).
export _RJEM_MALLOC_CONF="$(sed -n 's/^malloc_conf="\(.*\)"$/\1/p' scripts/image.sh)"
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

#!/usr/bin/env bash
# Builds the Kubernetes tools passport's chart checks use, from their Go modules at pinned versions,
# once per machine: helm (lint, template, install), kube-score (manifest lint), krew and its
# validate-krew-manifest (the plugin's packaging test); and, from the
# Prometheus Operator's module, its ServiceMonitor and PrometheusRule CRDs (monitoring-crds.yaml),
# against which the chart's optional monitoring objects are validated. Each is cached under passport's cache directory, keyed by module,
# version and link flags (the version stamps, so `helm version` and friends print the real one), and
# rebuilt only when those change. Concurrent runs wait for each other (flock).
# Arguments: which tools (default: all of them).
# Prints the directory holding the tools (symlinks) on stdout; progress goes to stderr.
set -euo pipefail

cache="${PASSPORT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/passport}/tools"

HELM_VERSION=v3.22.0
KUBE_SCORE_VERSION=v1.20.0
KREW_VERSION=v0.4.3
ALL=(helm kube-score monitoring-crds krew validate-krew-manifest)
PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.85.0

# name → "module/cmd@version|link flags" (the version stamps each project's release build sets).
spec() {
  case "$1" in
    helm)
      echo "helm.sh/helm/v3/cmd/helm@$HELM_VERSION|-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" ;;
    kube-score)
      echo "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION|-X main.version=${KUBE_SCORE_VERSION#v}" ;;
    krew | validate-krew-manifest)
      echo "sigs.k8s.io/krew/cmd/$1@$KREW_VERSION|" ;;
    *) echo "unknown tool: $1 (known: ${ALL[*]})" >&2; exit 2 ;;
  esac
}

build() {
  local name="$1" line module ldflags
  line="$(spec "$name")"
  module="${line%%|*}"
  ldflags="-s -w ${line#*|}"
  local key out
  key="$(echo "$module $ldflags" | sha256sum | cut -c1-16)"
  out="$cache/$name-$key"
  if [[ -x "$out/$name" ]]; then
    echo "$name: cached at $out" >&2
  else
    echo "$name: building $module (first time on this machine; a few minutes)…" >&2
    local tmp start=$SECONDS
    tmp="$(mktemp -d "$out.tmp.XXXXXX")"
    CGO_ENABLED=0 GOBIN="$tmp/gobin" GOFLAGS=-mod=mod go install -trimpath -ldflags="$ldflags" "$module"
    mv "$tmp/gobin/$name" "$tmp/$name" && rmdir "$tmp/gobin"
    rm -rf "$out" && mv "$tmp" "$out"
    echo "$name: built in $((SECONDS - start))s" >&2
  fi
  ln -sfn "$out/$name" "$cache/bin/$name"
}

# The CRDs of the Prometheus Operator's kinds the chart can create, as its module ships them.
monitoring_crds() {
  local key out dir kind
  key="$(echo "$PROMETHEUS_OPERATOR servicemonitors prometheusrules" | sha256sum | cut -c1-16)"
  out="$cache/monitoring-crds-$key"
  if [[ ! -f "$out/monitoring-crds.yaml" ]]; then
    echo "monitoring-crds: fetching $PROMETHEUS_OPERATOR…" >&2
    dir="$(GOFLAGS=-mod=mod go mod download -json "$PROMETHEUS_OPERATOR" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    local tmp
    tmp="$(mktemp -d "$out.tmp.XXXXXX")"
    for kind in servicemonitors prometheusrules; do
      echo "---"
      cat "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml"
    done >"$tmp/monitoring-crds.yaml"
    rm -rf "$out" && mv "$tmp" "$out"
  fi
  ln -sfn "$out/monitoring-crds.yaml" "$cache/bin/monitoring-crds.yaml"
}

mkdir -p "$cache/bin"
exec 9>"$cache/.build.lock"
flock 9
if [[ $# -gt 0 ]]; then
  tools=("$@")
else
  tools=("${ALL[@]}")
fi
for tool in "${tools[@]}"; do
  if [[ "$tool" == monitoring-crds ]]; then monitoring_crds; else build "$tool"; fi
done
echo "$cache/bin"

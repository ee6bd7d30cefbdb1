#!/usr/bin/env bash
# Renders deploy/'s plain manifests from the Helm chart (charts/passport, the one source) with
# `helm template`, release namespace passport-system and the chart's default values:
#   deploy/rbac.yaml       the namespace, then templates/rbac.yaml
#   deploy/admission.yaml  templates/admission.yaml
#   deploy/operator.yaml   templates/operator.yaml and templates/availability.yaml
# deploy/crds.yaml is the CRD generator's (cargo run -p passport-crds --bin crdgen -- --write, which
# writes the chart's crds/ too). The e2e trial chart::deploy_is_rendered_from_the_chart fails when
# deploy/ differs from what this script writes.
# Usage: scripts/render-deploy.sh [OUT_DIR]   (default: deploy/). HELM names the helm binary
# (default: the one tests/tools/build.sh builds and caches).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/deploy}"
helm="${HELM:-$(bash "$repo/tests/tools/build.sh" helm)/helm}"
namespace=passport-system

render() {
  local template
  for template in "$@"; do
    "$helm" template passport "$repo/charts/passport" --namespace "$namespace" \
      --show-only "templates/$template.yaml"
  done
}

header() {
  echo "# Rendered from charts/passport by scripts/render-deploy.sh (helm template, namespace"
  echo "# $namespace, default values): edit the chart, then run the script. $1"
}

mkdir -p "$out"
{
  header "Apply after crds.yaml."
  echo "---"
  echo "# passport's namespace (the Helm chart installs into the release namespace instead)."
  echo "apiVersion: v1"
  echo "kind: Namespace"
  echo "metadata:"
  echo "  name: $namespace"
  render rbac
} >"$out/rbac.yaml"
{ header "Apply after rbac.yaml."; render admission; } >"$out/admission.yaml"
{ header "Apply after rbac.yaml and admission.yaml."; render operator availability; } >"$out/operator.yaml"

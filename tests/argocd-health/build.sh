#!/usr/bin/env bash
# Builds argocd-health (the gopher-lua harness that runs Argo CD health checks over their
# health_test.yaml cases, see main.go) once per machine, cached and keyed by the module's files (see
# tests/lib/wrapper-module-build.sh). Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib/wrapper-module-build.sh"
wrapper_module_build argocd-health "$here" seconds

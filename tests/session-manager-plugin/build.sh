#!/usr/bin/env bash
# Builds AWS's session-manager-plugin (the real client of the Session Manager data channel, see
# main.go) once per machine, cached and keyed by the module's files (see
# tests/lib/wrapper-module-build.sh). Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib/wrapper-module-build.sh"
wrapper_module_build session-manager-plugin "$here" "a minute or two"

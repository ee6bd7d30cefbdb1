#!/usr/bin/env bash
# Installs what passport's build and tests need on a fresh machine of this kind (Debian with Rust,
# Go and Python), and nothing that is already there. Safe to run again.
set -euo pipefail

need_apt=()
command -v setpriv >/dev/null || need_apt+=(util-linux)
# jemalloc (the operator's allocator) is built from C with make.
command -v make >/dev/null || need_apt+=(make)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
# The test instance (tests/instance/): namespaces, an ssh client, and debootstrap for its rootfs.
{ command -v unshare && command -v nsenter; } >/dev/null || need_apt+=(util-linux)
command -v ssh >/dev/null || need_apt+=(openssh-client)
# rsync over ssh through Session Manager (e2e ssm_journey); the instance's rootfs has it too.
command -v rsync >/dev/null || need_apt+=(rsync)
command -v debootstrap >/dev/null || [[ -x /usr/sbin/debootstrap ]] || need_apt+=(debootstrap)
# The operator's image (scripts/image.sh and its e2e test): buildah, no Docker daemon.
command -v buildah >/dev/null || need_apt+=(buildah)

if [[ ${#need_apt[@]} -gt 0 ]]; then
  echo "installing Debian packages: ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

for tool in cargo go kubectl; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool is not installed; this machine kind ships it, so the machine is not as expected" >&2
    exit 1
  fi
done
# moto: the AWS emulator the end-to-end suite extends (tests/aws/passport_moto.py).
python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install --quiet 'moto[server]==5.2.1'
# websockets: the Session Manager data channel the real session-manager-plugin connects to (tests/aws/ssm_gateway.py).
python3 -c 'import websockets' 2>/dev/null || python3 -m pip install --quiet 'websockets==15.0.1'
# cloudevents: the third-party CloudEvents receiver of the Logbook sink tests (tests/cloudevents/).
python3 -c 'import cloudevents.v1.http' 2>/dev/null || python3 -m pip install --quiet 'cloudevents==2.2.0'
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

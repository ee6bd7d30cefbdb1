#!/usr/bin/env bash
# Builds the operator's OCI image without a Docker daemon (Debian's buildah), from scratch: the
# passport-operator binary, the shared libraries ldd lists for it, the CA certificates it trusts for
# AWS's TLS endpoints, and /etc/passwd naming its non-root user (65532, as the Helm chart runs it).
#
#   scripts/image.sh [--binary PATH] [--image NAME:TAG] [--storage DIR]
#
#   --binary PATH   put this operator binary in the image (default: cargo build --release)
#   --image NAME    the image's name (default: passport/operator:<crate version>, what the chart's
#                   values.yaml pulls by default)
#   --storage DIR   keep buildah's storage in DIR (vfs driver) instead of the machine's default
#
# Prints the image's name on stdout; progress goes to stderr. Push it with
#   buildah push passport/operator:0.1.0 docker://REGISTRY/passport/operator:0.1.0
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
binary="" image="passport/operator:$version" storage=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --image) image="$2"; shift 2 ;;
    --storage) storage=(--root "$2/root" --runroot "$2/run" --storage-driver vfs); shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--image NAME:TAG] [--storage DIR]" >&2; exit 2 ;;
  esac
done

if ! command -v buildah >/dev/null; then
  echo "image: installing buildah (Debian package)…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi
if [[ -z "$binary" ]]; then
  echo "image: cargo build --release -p passport-operator…" >&2
  cargo build --release --locked -p passport-operator --bin passport-operator >&2
  binary=target/release/passport-operator
fi
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[[ -s "$ca_bundle" ]] || { echo "image: no CA bundle at $ca_bundle (apt-get install ca-certificates)" >&2; exit 1; }

revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
source_url="$(git remote get-url origin 2>/dev/null || sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
license="$(sed -n 's/^license = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"

# The image's whole filesystem, staged here and copied in as one layer.
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$binary" "$root/usr/local/bin/passport-operator"
# Symbols off (55 MB → 33 MB for a release build): panics still say where, from their messages.
strip "$root/usr/local/bin/passport-operator"
# Every library the dynamic linker loads (and the linker itself), at the path ldd names.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
install -D -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:passport-operator:/home/nonroot:/sbin/nologin\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
install -d -m 0755 "$root/home/nonroot"
install -d -m 1777 "$root/tmp"
chown 65532:65532 "$root/home/nonroot"

# jemalloc's options (the operator's allocator reads _RJEM_MALLOC_CONF): one arena, whose freed pages
# serve every thread, instead of four per core that scatter a cache of thousands of small objects;
# freed pages back to the kernel after 1 s instead of 10 s. scripts/bench.sh measures with the same.
malloc_conf="narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0"
container="$(buildah "${storage[@]}" from scratch)"
buildah "${storage[@]}" copy --quiet "$container" "$root" / >/dev/null
buildah "${storage[@]}" config \
  --entrypoint '["/usr/local/bin/passport-operator"]' --cmd '' \
  --user 65532:65532 --workingdir /home/nonroot \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --env "_RJEM_MALLOC_CONF=$malloc_conf" \
  --label org.opencontainers.image.title=passport-operator \
  --label "org.opencontainers.image.description=passport: just-in-time SSH and RDP access to EC2 instances, granted through Kubernetes" \
  --label "org.opencontainers.image.source=$source_url" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.licenses=$license" \
  --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$container"
buildah "${storage[@]}" commit --quiet --format oci --rm "$container" "$image" >/dev/null
size="$(buildah "${storage[@]}" images --format '{{.Size}}' "$image" | head -n1)"
echo "image: built $image ($size)" >&2
echo "$image"

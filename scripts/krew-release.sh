#!/usr/bin/env bash
# Builds the krew release archive of `kubectl passport` for this machine's platform
# (kubectl-passport_v<version>_<os>_<arch>.tar.gz: the binary and LICENSE) and renders the krew
# manifest from deploy/krew/passport.yaml with one platform entry (uri, sha256) for every archive of
# this version in the output directory. Linux builds the linux archive; run the same script on macOS
# (or copy darwin archives into the output directory) and run it again to list darwin too.
#
#   scripts/krew-release.sh [--binary PATH] [--out DIR] [--base-url URL]
#
#   --binary PATH    package this kubectl-passport binary (default: cargo build --release)
#   --out DIR        where archives and the manifest go (default: target/krew)
#   --base-url URL   where the archives will be downloaded from (default: the repository's
#                    releases/download/v<version>)
#
# Prints the manifest's path on stdout; progress goes to stderr. Publish the archives at the base URL,
# then check the manifest with `validate-krew-manifest -manifest passport.yaml` and submit it to the
# krew index (or install it from the file: kubectl krew install --manifest=passport.yaml).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo_field() { sed -n "s/^$1 = \"\\(.*\\)\"\$/\\1/p" Cargo.toml | head -n1; }
version="$(cargo_field version)"
homepage="$(cargo_field repository)"
binary="" out="target/krew" base_url="$homepage/releases/download/v$version"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --base-url) base_url="${2%/}"; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--out DIR] [--base-url URL]" >&2; exit 2 ;;
  esac
done

case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) echo "unsupported OS $(uname -s)" >&2; exit 1 ;; esac
case "$(uname -m)" in x86_64|amd64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) echo "unsupported arch $(uname -m)" >&2; exit 1 ;; esac
if [[ -z "$binary" ]]; then
  echo "krew-release: cargo build --release -p kubectl-passport…" >&2
  cargo build --release --locked -p kubectl-passport --bin kubectl-passport >&2
  binary=target/release/kubectl-passport
fi
sha256() { if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -d' ' -f1; }

mkdir -p "$out"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$binary" "$stage/kubectl-passport"
install -m 0644 LICENSE "$stage/LICENSE"
archive="$out/kubectl-passport_v${version}_${os}_${arch}.tar.gz"
reproducible=()
tar --version 2>/dev/null | grep -q GNU && reproducible=(--sort=name --owner=0 --group=0 --numeric-owner --mtime=@0)
tar "${reproducible[@]}" -C "$stage" -czf "$archive" kubectl-passport LICENSE
echo "krew-release: built $archive" >&2

manifest="$out/passport.yaml"
sed -e "s|@VERSION@|v$version|g" -e "s|@HOMEPAGE@|$homepage|g" deploy/krew/passport.yaml >"$manifest"
for found in "$out"/kubectl-passport_v"${version}"_*_*.tar.gz; do
  name="$(basename "$found")"
  platform="${name#kubectl-passport_v"${version}"_}" && platform="${platform%.tar.gz}"
  cat >>"$manifest" <<ENTRY
  - selector:
      matchLabels:
        os: ${platform%_*}
        arch: ${platform#*_}
    uri: $base_url/$name
    sha256: $(sha256 "$found")
    bin: kubectl-passport
    files:
    - from: kubectl-passport
      to: .
    - from: LICENSE
      to: .
ENTRY
  echo "krew-release: listed ${platform%_*}/${platform#*_} ($name)" >&2
done
echo "$manifest"

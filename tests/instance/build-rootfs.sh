#!/usr/bin/env bash
# Builds the root filesystem of the test instance (a minimal Debian bookworm with Debian's own
# openssh-server), once per machine. It is cached outside the repository, keyed by this script's
# content, and built into a temporary directory that is renamed into place only when complete, so an
# interrupted build is never used. Instances never write to it: each one runs on an overlay whose
# writable layer lives in the instance's own mount namespace (see tests/instance/start.sh).
# Prints the rootfs directory on stdout; progress goes to stderr. Needs root and debootstrap.
#
# PASSPORT_DEBIAN_MIRROR overrides the mirror; by default it is the one this host's apt uses.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PASSPORT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/passport}"
key="$(sha256sum "$here/build-rootfs.sh" | cut -c1-16)"
out="$cache/instance-rootfs-$key"
suite=bookworm
packages=openssh-server,procps,passwd,login,util-linux,rsync

if [[ -f "$out/.passport-rootfs-complete" ]]; then
  echo "instance rootfs: cached at $out" >&2
  echo "$out"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "error: building the instance rootfs needs root (debootstrap)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "error: debootstrap is not installed (apt-get install debootstrap, or scripts/install-deps.sh)" >&2
  exit 1
fi

# The first Debian mirror of this host's apt sources that serves $suite (one-line .list files and
# deb822 .sources files), so the build reaches only what the host already reaches.
host_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk -v suite="$suite" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # Stanzas are separated by blank lines; fields are "Name: value".
    awk -v suite="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no" && (" " suites " ") ~ (" " suite " "))
          { split(uris, u, " "); print u[1]; found = 1 }
        types = ""; uris = ""; suites = ""; enabled = ""
      }
      /^[[:space:]]*$/ { flush(); if (found) exit; next }
      /^#/ { next }
      { name = tolower($1); sub(/^[^:]*:[[:space:]]*/, "") }
      name == "types:" { types = $0 } name == "uris:" { uris = $0 }
      name == "suites:" { suites = $0 } name == "enabled:" { enabled = $0 }
      END { if (!found) flush() }' "$f"
  done
}
mirror="${PASSPORT_DEBIAN_MIRROR:-$(host_mirror | head -n 1)}"
mirror="${mirror:-http://deb.debian.org/debian}"

mkdir -p "$cache"
# One build at a time per machine; whoever waited finds the finished rootfs.
exec 9>"$cache/instance-rootfs.lock"
flock 9
if [[ -f "$out/.passport-rootfs-complete" ]]; then
  echo "instance rootfs: built meanwhile at $out" >&2
  echo "$out"
  exit 0
fi

# Removes a partial build. debootstrap mounts proc and sys inside the target while it runs: unmount
# whatever is still mounted there, and never recurse into a mount.
remove_partial() {
  awk -v dir="$1" 'index($2, dir "/") == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$1"
}
for stale in "$out".tmp.*; do
  [[ -e $stale ]] && remove_partial "$stale"
done
tmp="$out.tmp.$$"
trap 'remove_partial "$tmp"' EXIT

echo "instance rootfs: debootstrap $suite from $mirror (first time on this machine; takes a minute or two)…" >&2
start=$SECONDS
log="$cache/instance-rootfs-build.log"
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" "$mirror" >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "error: debootstrap failed; its whole output is in $log" >&2
  exit 1
fi

# Every instance generates its own host keys when it starts.
rm -f "$tmp"/etc/ssh/ssh_host_*
# What a real instance has and a bare debootstrap lacks.
mkdir -p "$tmp/var/lib/amazon/ssm"
chmod 0700 "$tmp/var/lib/amazon/ssm"
# Caches only make the cache bigger.
chroot "$tmp" apt-get clean
rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/debconf/*-old
touch "$tmp/.passport-rootfs-complete"

rm -rf --one-file-system "$out"
mv "$tmp" "$out"
trap - EXIT
echo "instance rootfs: built in $((SECONDS - start))s at $out" >&2
echo "$out"

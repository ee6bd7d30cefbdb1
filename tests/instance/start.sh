#!/usr/bin/env bash
# Boots one test instance. Run by the Rust harness (tests/src/instance.rs) as the first process of
# fresh PID, mount, UTS and IPC namespaces:
#
#   setpriv --pdeathsig=KILL -- unshare --fork --kill-child --pid --mount --uts --ipc \
#     --propagation=private -- bash start.sh ROOTFS MOUNTPOINT PORT INSTANCE_ID [SSHD_ARG...]
#
# Any SSHD_ARGs (e.g. `-o CASignatureAlgorithms=ssh-rsa`) go to sshd as they are; sshd options given
# on its command line win over sshd_config, also after the scripts edit it and reload sshd.
#
# Everything it mounts exists only in the instance's mount namespace, and the instance's writable
# layer is a tmpfs mounted there too, so when the namespace's last process exits the kernel drops all
# of it: nothing the instance did (users, homes, files) ever reaches the host's filesystem. The
# cached ROOTFS is the overlay's read-only lower layer and is never written.
#
# On stdout it prints "pid HOST_PID" (its own PID as the host sees it; it becomes sshd, PID 1 of the
# instance) and then "ready", after which sshd runs in the foreground with its log on stderr.
set -euo pipefail

rootfs="$1" mnt="$2" port="$3" id="$4"
shift 4

# /proc is still the host's here, so this is the host's PID for this process, which exec keeps.
read -r host_pid _ </proc/self/stat

# The writable layer: a tmpfs private to this mount namespace.
mount -t tmpfs -o mode=0700 passport-instance "$mnt"
mkdir "$mnt/upper" "$mnt/work" "$mnt/root"
root="$mnt/root"
mount -t overlay -o "lowerdir=$rootfs,upperdir=$mnt/upper,workdir=$mnt/work" passport-instance "$root"

# This process is PID 1 of the new PID namespace, so this proc shows only the instance's processes.
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"

# A minimal /dev, as container runtimes make it, with a private devpts for sshd's PTYs.
mount -t tmpfs -o mode=0755,nosuid,size=64k dev "$root/dev"
mknod -m 0666 "$root/dev/null" c 1 3
mknod -m 0666 "$root/dev/zero" c 1 5
mknod -m 0666 "$root/dev/full" c 1 7
mknod -m 0666 "$root/dev/random" c 1 8
mknod -m 0666 "$root/dev/urandom" c 1 9
mknod -m 0666 "$root/dev/tty" c 5 0
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"

# What booting does on Debian: a fresh /run with the directory sshd's unit would create.
mount -t tmpfs -o mode=0755,nosuid,nodev run "$root/run"
mkdir -m 1777 "$root/run/lock"
mkdir -m 0755 "$root/run/sshd"
printf '%s\n' "$id" >"$root/run/passport-instance"

hostname "$id"
printf '%s\n' "$id" >"$root/etc/hostname"
# This instance's own host keys, like first boot of an image.
chroot "$root" /usr/bin/ssh-keygen -A >&2

printf 'pid %s\nready\n' "$host_pid"
exec chroot "$root" /usr/sbin/sshd -D -e -p "$port" -o ListenAddress=127.0.0.1 -o PidFile=/run/sshd.pid "$@" >&2

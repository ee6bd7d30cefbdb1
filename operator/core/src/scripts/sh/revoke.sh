# ---- passport: revoke (static text) ----
# Releases this request's hold on the user. The last holder to go removes the user, everything that
# lets it in and everything it left behind. ca.pub and the sshd configuration stay: other passport
# users on this host may still rely on them.

# Where leftovers are searched (colon-separated lists). PASSPORT_SETUID_ROOTS replaces the local
# filesystems read from PASSPORT_MOUNTS.
TMP_DIRS="${PASSPORT_TMP_DIRS:-/tmp:/var/tmp:/dev/shm}"
SYSVIPC_DIR="${PASSPORT_SYSVIPC_DIR:-/proc/sysvipc}"
MOUNTS="${PASSPORT_MOUNTS:-/proc/self/mounts}"

# 0. Before anything else (under the lock): a tombstone for this request, so that a provisioning
#    command of it that runs later (delivered late) refuses instead of bringing the user back.
#    Whatever follows, a revoke leaves it: for a missing user and for a holder not listed too.
mkdir -p -- "$REVOKED_DIR"
chmod 0700 "$REVOKED_DIR"
write_file "$TOMBSTONE" 0600 "$PASSPORT_USER"
# Holders never repeat and no provisioning command is delivered days late: old tombstones can go.
find -P "$REVOKED_DIR" -type f -mtime +7 -delete || warn "could not prune old tombstones in $REVOKED_DIR"

if ! user_exists; then
    # Nothing to remove. Clear what an interrupted earlier run may have left (passport's own files).
    rm -f -- "$PRINCIPALS_FILE" "$MARKER"
    echo "passport: user $PASSPORT_USER does not exist; nothing to revoke"
    exit 0
fi
[ -f "$MARKER" ] || die "$PASSPORT_EXIT_FOREIGN" \
    "user $PASSPORT_USER exists but was not created by passport (no $MARKER); refusing to touch it"

# 1. This request lets go (a holder the marker does not list changes nothing). Written first: should
#    the removal below fail, a retry finds no holder left and removes the user.
update_marker remove
holders="$(marker_holders)"
if [ "$holders" != 0 ]; then
    # Its principal goes (rewritten from the marker, so a retry does it too): its certificates no
    # longer log in, the other requests' still do.
    write_principals
    echo "passport: user $PASSPORT_USER kept: still held by $holders other request(s)"
    exit 0
fi

# 2. No new logins. Without its principals file no certificate is accepted for the user; an expired
#    account also fails PAM's account check (su, cron, atd and other services).
rm -f -- "$PRINCIPALS_FILE"
usermod --expiredate 1 -- "$PASSPORT_USER"

# Processes, IPC objects and files are found by uid, so it must be this account's alone (never 0).
entry="$(getent passwd "$PASSPORT_USER")" || die 1 "could not look up user $PASSPORT_USER"
IFS=: read -r _ _ USER_UID USER_GID _ <<<"$entry"
# (A uid with leading zeros would be 0 to the tools below: only a plain positive number will do.)
[[ $USER_UID =~ ^[1-9][0-9]{0,9}$ && $USER_GID =~ ^[0-9]{1,10}$ ]] && ((USER_UID < 4294967295)) ||
    die 1 "user $PASSPORT_USER has an unusable uid or gid ($USER_UID, $USER_GID)"
sharing="$(getent passwd | awk -F: -v uid="$USER_UID" -v user="$PASSPORT_USER" \
    '$3 == uid && $1 != user && !found { print $1; found = 1 }')"
[ -z "$sharing" ] || die 1 "uid $USER_UID of $PASSPORT_USER is also the uid of $sharing;" \
    "refusing to end processes or remove files by uid (logins are already refused)"

# 3. End what is running: sessions first, then any process left (daemons, nohup, screen).
# By effective and by real uid: a setuid program started by the user runs with another euid.
has_processes() { pgrep -u "$PASSPORT_USER" >/dev/null 2>&1 || pgrep -U "$PASSPORT_USER" >/dev/null 2>&1; }
# pkill works from a snapshot of the process list, which a chain of forks can outrun. kill(-1) made
# as the user signals, in one system call, every process that uid may signal: all of the user's
# (including its setuid programs, by real uid) and nothing else, as the uid is the account's alone
# (checked above). It does not signal the caller. The shell run as the user checks that it really is
# that uid (never 0) without capabilities before it kills. Skipped where setpriv is missing.
KILL_AS_USER='[ "$UID" = "$1" ] && [ "$EUID" = "$1" ] && [ "$1" != 0 ] || exit 1
caps=x
while read -r key value; do [ "$key" != CapEff: ] || caps="$value"; done </proc/self/status
[[ $caps =~ ^0+$ ]] || exit 1
kill -KILL -1'
kill_as_user() {
    command -v setpriv >/dev/null 2>&1 || return 0
    ((USER_UID > 0)) || return 0
    setpriv --reuid="$USER_UID" --regid="$USER_GID" --clear-groups -- \
        "$BASH" -c "$KILL_AS_USER" passport-kill "$USER_UID" </dev/null >/dev/null 2>&1 9>&- || true
}
for _ in 1 2 3 4 5 6 7 8 9 10; do
    kill_as_user
    if [ -d /run/systemd/system ] && command -v loginctl >/dev/null 2>&1; then
        loginctl terminate-user "$PASSPORT_USER" >/dev/null 2>&1 || true
    fi
    pkill -KILL -u "$PASSPORT_USER" >/dev/null 2>&1 || true
    pkill -KILL -U "$PASSPORT_USER" >/dev/null 2>&1 || true
    has_processes || break
    sleep 1
done
if has_processes; then
    die 1 "processes of $PASSPORT_USER are still running after 10 attempts to end them"
fi

# 4. What the user left outside its home (nothing of it runs any more, so nothing new appears). No
#    later user may inherit any of it, and nothing planted may act after the access ends. A step
#    whose tool is not installed is skipped; a step that fails is a warning: the account goes anyway.
remove_at_jobs() {
    command -v atq >/dev/null 2>&1 && command -v atrm >/dev/null 2>&1 || return 0
    local jobs job
    # As root, atq lists every user's jobs: "<id>\t<date> <queue> <user>".
    jobs="$(atq | P_USER="$PASSPORT_USER" awk '$NF == ENVIRON["P_USER"] && $1 ~ /^[0-9]+$/ { print $1 }')" ||
        warn "could not list the at jobs of $PASSPORT_USER"
    for job in $jobs; do
        atrm "$job" || warn "could not remove at job $job of $PASSPORT_USER"
    done
}

# /proc/sysvipc rather than ipcs: it gives the owner's uid, where ipcs prints (and may cut) names.
remove_ipc_objects() {
    command -v ipcrm >/dev/null 2>&1 || return 0
    local kind id
    for kind in shm:-m sem:-s msg:-q; do
        [ -r "$SYSVIPC_DIR/${kind%:*}" ] || continue
        # The header names the columns; the second one is the object's id.
        while read -r id; do
            ipcrm "${kind#*:}" "$id" || warn "could not remove System V ${kind%:*} $id of $PASSPORT_USER"
        done < <(awk -v uid="$USER_UID" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "uid") c = i; next }
            c && $c == uid && $2 ~ /^[0-9]+$/ { print $2 }' "$SYSVIPC_DIR/${kind%:*}")
    done
}

# Deletes what the user owns under each directory in $1 for which the rest of the arguments (find
# tests) hold. Never the directory itself; -xdev stays on its filesystem. find does not follow
# symbolic links, and -delete removes a link, not what it points to.
remove_owned() {
    local dirs="$1" dir
    shift
    local -a list
    IFS=: read -r -a list <<<"$dirs"
    for dir in "${list[@]}"; do
        if [ -d "$dir" ] && [ ! -L "$dir" ]; then
            find -P "$dir" -xdev -mindepth 1 -user "$USER_UID" "$@" -delete ||
                warn "could not remove every file of $PASSPORT_USER under $dir"
        fi
    done
}

# The local filesystems (colon-separated, so a mount point with a colon is left out), apart from
# /proc, /sys and /dev (but /dev/shm): network filesystems could take very long to search and are
# not this host's to clean.
local_filesystems() {
    local mount type roots=''
    [ -r "$MOUNTS" ] || return 0
    while read -r _ mount type _; do
        case "$type" in
            ext2 | ext3 | ext4 | xfs | btrfs | zfs | f2fs | jfs | reiserfs | vfat | exfat | tmpfs | overlay) ;;
            *) continue ;;
        esac
        printf -v mount '%b' "$mount" # the kernel writes a space as \040
        case "$mount" in
            /dev/shm | /dev/shm/*) ;;
            /proc | /proc/* | /sys | /sys/* | /dev | /dev/* | *:*) continue ;;
        esac
        roots="$roots${roots:+:}$mount"
    done <"$MOUNTS"
    printf '%s' "$roots"
}

if command -v crontab >/dev/null 2>&1; then
    crontab -r -u "$PASSPORT_USER" >/dev/null 2>&1 || true
fi
remove_at_jobs
remove_ipc_objects
remove_owned "$TMP_DIRS"
remove_owned "${PASSPORT_SETUID_ROOTS:-$(local_filesystems)}" -type f -perm /6000

# 5. Remove the account, its home, mail spool and crontab (a later user of the same name, i.e. the
#    same requester, must not inherit any of it), then its own group if userdel left it.
rc=0
userdel --remove -- "$PASSPORT_USER" || rc=$?
case "$rc" in
    0) ;;
    6) echo "passport: user $PASSPORT_USER disappeared meanwhile" ;;
    # The account is gone (access is revoked) but part of its home or mail spool could not be removed.
    12) warn "removed $PASSPORT_USER but not all of its home directory" ;;
    *) die 1 "userdel failed with exit code $rc" ;;
esac
if group="$(getent group "$PASSPORT_USER")"; then
    IFS=: read -r _ _ gid _ <<<"$group"
    if [ "$gid" = "$USER_GID" ]; then
        groupdel -- "$PASSPORT_USER" || warn "could not remove the group $PASSPORT_USER"
    fi
fi
rm -f -- "$MARKER"
echo "passport: revoked user $PASSPORT_USER"

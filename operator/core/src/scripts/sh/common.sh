# ---- passport: common part (static text; request values only come from the variables above) ----

export LC_ALL=C
umask 077
# SSM's environment may lack the sbin directories; appending keeps any earlier entries first.
PATH="${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

die() {
    local code="$1"
    shift
    printf 'passport: %s\n' "$*" >&2
    exit "$code"
}

# Defence in depth: the operator validated the name too, but this script never acts on another.
USERNAME_RE='^rs-[0-9a-f]{8}(-[a-z0-9]{1,6})?$'
[[ $PASSPORT_USER =~ $USERNAME_RE ]] ||
    die "$PASSPORT_EXIT_INVALID" "refusing to run: '$PASSPORT_USER' is not a passport username"
[ "$(id -u)" = 0 ] || die "$PASSPORT_EXIT_INVALID" "must run as root"

# Locations. The PASSPORT_* environment variables exist for tests and unusual hosts.
SSH_DIR="${PASSPORT_SSH_DIR:-/etc/ssh}"
STATE_DIR="${PASSPORT_STATE_DIR:-/var/lib/passport}"
CONF_DIR="$SSH_DIR/passport"
PRINCIPALS_DIR="$CONF_DIR/principals"
PRINCIPALS_FILE="$PRINCIPALS_DIR/$PASSPORT_USER"
# A user passport created has a marker here; users without one are never modified or removed.
MARKER_DIR="$STATE_DIR/users"
MARKER="$MARKER_DIR/$PASSPORT_USER"

# One passport script at a time on a host: SSM runs commands concurrently, and provisioning rewrites
# files all passport users share (ca.pub, the sshd configuration).
mkdir -p -- "$STATE_DIR"
if command -v flock >/dev/null 2>&1; then
    exec 9>>"$STATE_DIR/lock"
    flock -w 300 9 || die 1 "timed out waiting for another passport script on this host"
fi

# Whether the account exists (in any NSS source); a failed lookup is an error, not "absent".
user_exists() {
    local rc=0
    getent passwd "$PASSPORT_USER" >/dev/null || rc=$?
    case "$rc" in
        0) return 0 ;;
        2) return 1 ;;
        *) die 1 "could not look up user $PASSPORT_USER (getent exit $rc)" ;;
    esac
}

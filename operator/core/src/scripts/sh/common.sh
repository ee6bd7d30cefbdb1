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

warn() {
    printf 'passport: warning: %s\n' "$*" >&2
}

# Defence in depth: the operator validated the name too, but this script never acts on another.
USERNAME_RE='^rs-[0-9a-f]{8}(-[a-z0-9]{1,6})?$'
[[ $PASSPORT_USER =~ $USERNAME_RE ]] ||
    die "$PASSPORT_EXIT_INVALID" "refusing to run: '$PASSPORT_USER' is not a passport username"
# The holder is the AccessRequest's Kubernetes UID; it is written into the marker, one per line.
[[ $PASSPORT_HOLDER =~ ^[0-9a-z-]{1,64}$ ]] ||
    die "$PASSPORT_EXIT_INVALID" "refusing to run: '$PASSPORT_HOLDER' is not a Kubernetes UID"
[ "$(id -u)" = 0 ] || die "$PASSPORT_EXIT_INVALID" "must run as root"

# Locations. The PASSPORT_* environment variables exist for tests and unusual hosts.
SSH_DIR="${PASSPORT_SSH_DIR:-/etc/ssh}"
STATE_DIR="${PASSPORT_STATE_DIR:-/var/lib/passport}"
CONF_DIR="$SSH_DIR/passport"
PRINCIPALS_DIR="$CONF_DIR/principals"
PRINCIPALS_FILE="$PRINCIPALS_DIR/$PASSPORT_USER"
# A user passport created has a marker here, listing the requests that hold it (see below); users
# without one are never modified or removed.
MARKER_DIR="$STATE_DIR/users"
MARKER="$MARKER_DIR/$PASSPORT_USER"
# A revoke leaves a tombstone named after its holder here; provisioning a tombstoned holder (a late
# command, run after its own revoke) is refused. Holders (AccessRequest UIDs) never repeat.
REVOKED_DIR="$STATE_DIR/revoked"
TOMBSTONE="$REVOKED_DIR/$PASSPORT_HOLDER"

# One passport script at a time on a host: SSM runs commands concurrently, and provisioning rewrites
# files all passport users share (ca.pub, the sshd configuration, the markers, the uid counter).
mkdir -p -- "$STATE_DIR"
if command -v flock >/dev/null 2>&1; then
    exec 9>>"$STATE_DIR/lock"
    # At most 60 s: the operator counts on a command that waited longer never running (UNCONFIRMED_GRACE).
    flock -w 60 9 || die 1 "timed out waiting for another passport script on this host"
fi

# Whether $2 is in NSS database $1 (passwd or group; a name or a number). A failed lookup is an
# error, not "absent".
in_database() {
    local rc=0
    getent "$1" "$2" >/dev/null || rc=$?
    case "$rc" in
        0) return 0 ;;
        2) return 1 ;;
        *) die 1 "could not look up $1 entry $2 (getent exit $rc)" ;;
    esac
}

user_exists() {
    in_database passwd "$PASSPORT_USER"
}

# Creates directory $1 (root-owned, mode $2) if needed and fixes its owner and mode.
install_dir() {
    mkdir -p -- "$1"
    chown root:root "$1"
    chmod "$2" "$1"
}

# Replaces file $1 atomically with $3 plus a newline: a temporary file in the same directory, then
# mv, so no reader (sshd, another script) ever sees a half-written file. Mode $2, root-owned.
write_file() {
    local tmp
    tmp="$(mktemp "$1.passport.XXXXXX")"
    printf '%s\n' "$3" >"$tmp"
    chown root:root "$tmp"
    chmod "$2" "$tmp"
    mv -f -- "$tmp" "$1"
}

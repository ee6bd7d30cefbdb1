# ---- passport: provision (static text) ----

# First, under the lock: a request revoked on this host is never provisioned again. This command may
# have been delivered late, after the revoke that ended its request, and no revoke would follow.
[ ! -e "$TOMBSTONE" ] || die "$PASSPORT_EXIT_REVOKED" \
    "request $PASSPORT_HOLDER was already revoked on this host; refusing to provision it again"

# When this request's access ends (seconds since the epoch): its principal line and the account
# stop working then even if no revoke ever arrives.
[[ $PASSPORT_EXPIRES_AT =~ ^[1-9][0-9]{0,11}$ ]] ||
    die "$PASSPORT_EXIT_INVALID" "refusing to run: '$PASSPORT_EXPIRES_AT' is not a time in seconds"

SSHD_PID_FILE="${PASSPORT_SSHD_PID:-/run/sshd.pid}"
SSHD_CONFIG="$SSH_DIR/sshd_config"
DROPIN_DIR="$SSH_DIR/sshd_config.d"
DROPIN="$DROPIN_DIR/50-passport.conf"
CA_FILE="$CONF_DIR/ca.pub"

[ -x "$SSHD" ] || die "$PASSPORT_EXIT_INVALID" "sshd not found at $SSHD (set PASSPORT_SSHD)"
[ -f "$SSHD_CONFIG" ] || die "$PASSPORT_EXIT_INVALID" "no sshd configuration at $SSHD_CONFIG"
case "$SSH_DIR" in
    *[[:space:]]*) die "$PASSPORT_EXIT_INVALID" "the ssh directory must not contain whitespace" ;;
esac

# Like write_file, but keeps the owner and mode of the existing file $1.
rewrite_file() {
    local tmp
    tmp="$(mktemp "$1.passport.XXXXXX")"
    cp -p -- "$1" "$tmp"
    printf '%s\n' "$2" >"$tmp"
    mv -f -- "$tmp" "$1"
}

# ---- uids ----
# A new account gets the next number of passport's own range, for its uid and for the gid of its own
# group, and that number is never handed out again on this host: files, IPC objects or audit records
# an earlier account left behind can never belong to a later one (of another requester). The
# high-water mark is saved before the account exists, so even a failed useradd uses its number up.
UID_MIN="${PASSPORT_UID_MIN:-2000000000}"
# systemd reserves the numbers from 2147352576 (0x7FFE0000) on.
UID_LIMIT=2147352575
NEXT_UID_FILE="$STATE_DIR/next-uid"
[[ $UID_MIN =~ ^[1-9][0-9]{3,9}$ ]] && ((UID_MIN <= UID_LIMIT)) ||
    die "$PASSPORT_EXIT_INVALID" "PASSPORT_UID_MIN must be a number from 1000 to $UID_LIMIT"

# Sets NEW_UID: the high-water mark (at least UID_MIN), past any number already taken by a user or
# a group, and records the number after it as the new mark.
allocate_uid() {
    local next="$UID_MIN" recorded
    if [ -e "$NEXT_UID_FILE" ]; then
        recorded="$(head -n 1 -- "$NEXT_UID_FILE")"
        [[ $recorded =~ ^[0-9]{1,10}$ ]] ||
            die 1 "$NEXT_UID_FILE is corrupt; refusing to pick a uid that may have been used before"
        if ((10#$recorded > next)); then next=$((10#$recorded)); fi
    fi
    while in_database passwd "$next" || in_database group "$next"; do
        next=$((next + 1))
    done
    ((next <= UID_LIMIT)) || die 1 "passport's uid range is used up (the next uid would be $next)"
    write_file "$NEXT_UID_FILE" 0600 "$((next + 1))"
    NEW_UID="$next"
}

# Creates the account and its own group, both numbered $1. If that fails, removes what it created,
# unless useradd got as far as the account (exit 12: no home directory); exit 9 means someone else
# created the name meanwhile.
create_account() {
    local rc=0
    groupadd --gid "$1" -- "$PASSPORT_USER" || rc=$?
    if [ "$rc" != 0 ]; then
        rm -f -- "$MARKER"
        die 1 "groupadd failed for $PASSPORT_USER with exit code $rc (9: a group of that name exists)"
    fi
    # --no-log-init: lastlog and faillog are indexed by uid; no need for huge sparse files.
    useradd --create-home --shell /bin/bash --uid "$1" --gid "$1" --no-log-init --comment passport \
        -- "$PASSPORT_USER" || rc=$?
    if [ "$rc" != 0 ]; then
        if [ "$rc" = 9 ] || ! user_exists; then
            rm -f -- "$MARKER"
            groupdel -- "$PASSPORT_USER" || true
        fi
        die 1 "useradd failed for $PASSPORT_USER with exit code $rc"
    fi
}

# ---- sshd configuration helpers ----
MATCH_BEGIN='# BEGIN passport (managed by passport; do not edit)'
MATCH_END='# END passport'

# Certificates of passport's CA are the only way in for these users: no authorized_keys file (one a
# user wrote into its own home would otherwise let it back in after its access ended), no key or
# principals command, no password, keyboard-interactive (PAM), host-based or Kerberos login,
# whatever the rest of the configuration allows other users. Every keyword is valid inside Match
# since OpenSSH 6.x; 'none' turns the commands off (no AuthorizedKeysCommandUser needed).
match_block() {
    printf '%s\n' \
        "# Certificate login for passport's short-lived users; other users are not affected." \
        "# An rs-* user without a principals file cannot log in with a certificate." \
        'Match User rs-*' \
        "    TrustedUserCAKeys $CA_FILE" \
        "    AuthorizedPrincipalsFile $PRINCIPALS_DIR/%u" \
        '    AuthorizedPrincipalsCommand none' \
        '    AuthorizedKeysFile none' \
        '    AuthorizedKeysCommand none' \
        '    PubkeyAuthentication yes' \
        '    PasswordAuthentication no' \
        '    KbdInteractiveAuthentication no' \
        '    HostbasedAuthentication no' \
        '    GSSAPIAuthentication no'
}

# Whether sshd_config includes the drop-in directory (Debian, Ubuntu, Amazon Linux 2023, RHEL 9...).
includes_dropins() {
    local keyword rest arg
    local -a args
    while read -r keyword rest || [ -n "$keyword" ]; do
        if [[ ${keyword,,} != include || -z $rest ]]; then
            continue
        fi
        read -r -a args <<<"$rest"
        for arg in "${args[@]}"; do
            case "$arg" in
                "$DROPIN_DIR/*.conf" | "$DROPIN_DIR/*" | "sshd_config.d/*.conf" | "sshd_config.d/*")
                    return 0
                    ;;
            esac
        done
    done <"$SSHD_CONFIG"
    return 1
}

# sshd_config without passport's marked block.
config_without_block() {
    awk -v begin="$MATCH_BEGIN" -v end="$MATCH_END" \
        '$0 == begin { skip = 1; next } skip && $0 == end { skip = 0; next } !skip' "$SSHD_CONFIG"
}

# Runs sshd -t; on failure its message is left in SSHD_TEST_OUTPUT.
SSHD_TEST_OUTPUT=''
sshd_config_valid() {
    local privsep_re='Missing privilege separation directory: ([^[:space:]]+)'
    SSHD_TEST_OUTPUT="$("$SSHD" -t -f "$SSHD_CONFIG" 2>&1)" && return 0
    # Debian and Ubuntu create this directory when the service starts; sshd -t insists on it.
    if [[ $SSHD_TEST_OUTPUT =~ $privsep_re ]]; then
        mkdir -p -- "${BASH_REMATCH[1]}"
        chmod 0755 "${BASH_REMATCH[1]}"
        SSHD_TEST_OUTPUT="$("$SSHD" -t -f "$SSHD_CONFIG" 2>&1)" && return 0
    fi
    return 1
}

# Copies file $1 aside and prints the copy's path (nothing if $1 does not exist).
backup() {
    if [ -e "$1" ]; then
        local copy
        copy="$(mktemp "$1.passport-backup.XXXXXX")"
        cp -p -- "$1" "$copy"
        printf '%s' "$copy"
    fi
}

# Puts file $1 back as it was: restores backup $2, or removes $1 if it did not exist.
restore() {
    if [ -n "$2" ]; then mv -f -- "$2" "$1"; else rm -f -- "$1"; fi
}

# Check before changing anything at all: a configuration that is already broken is not passport's to
# fix, and reloading sshd with it would stop sshd.
sshd_config_valid || die "$PASSPORT_EXIT_SSHD" \
    "the sshd configuration is invalid before any change by passport; leaving it alone: $SSHD_TEST_OUTPUT"

# ---- 1. The account ----
install_dir "$STATE_DIR" 0700
install_dir "$MARKER_DIR" 0700
if user_exists; then
    [ -f "$MARKER" ] || die "$PASSPORT_EXIT_FOREIGN" \
        "user $PASSPORT_USER exists but was not created by passport (no $MARKER); refusing to touch it"
    update_marker add "$PASSPORT_REQUEST"
    echo "passport: user $PASSPORT_USER already exists (created by passport)"
else
    allocate_uid
    # The marker goes first: a user passport created without one could never be removed by it. A
    # stale marker (its user is gone) lists stale holders: start afresh.
    marker="$(marker_update add /dev/null "$PASSPORT_REQUEST")"
    write_file "$MARKER" 0600 "$marker"
    create_account "$NEW_UID"
    echo "passport: created user $PASSPORT_USER (uid $NEW_UID)"
fi
# No password can match '*', so password login is impossible. Unlike a '!'-locked password it does
# not make sshd refuse the account outright when UsePAM is off. The expiry date (the day after the
# latest holder's access ends, see account_expiry) also undoes the expiry an interrupted revoke may
# have set.
usermod --password '*' --expiredate "$(account_expiry)" -- "$PASSPORT_USER"

# ---- 2. Trust: the user CA and the principals of the requests holding this user ----
install_dir "$CONF_DIR" 0755
install_dir "$PRINCIPALS_DIR" 0755
write_file "$CA_FILE" 0644 "$(printf '%s\n' "${PASSPORT_CA_KEYS[@]}")"
write_principals

# ---- 3. sshd configuration, scoped to passport's users ----

CONFIG_BACKUP="$(backup "$SSHD_CONFIG")"
DROPIN_BACKUP="$(backup "$DROPIN")"
CONFIG_PENDING=1
rollback() {
    if [ "$CONFIG_PENDING" = 1 ]; then
        CONFIG_PENDING=0
        restore "$SSHD_CONFIG" "$CONFIG_BACKUP"
        restore "$DROPIN" "$DROPIN_BACKUP"
    fi
}
# Whatever fails from here on, never leave a half-applied sshd configuration behind.
trap rollback EXIT

if includes_dropins; then
    install_dir "$DROPIN_DIR" 0755
    write_file "$DROPIN" 0644 "# Managed by passport; rewritten on every provisioning, do not edit.
$(match_block)"
    # A block from a time sshd_config had no Include would now be a duplicate.
    if grep -qxF -- "$MATCH_BEGIN" "$SSHD_CONFIG"; then
        rewrite_file "$SSHD_CONFIG" "$(config_without_block)"
    fi
else
    # Older sshd (no Include): keep one marked block at the very end. 'Match all' closes it, so a
    # line someone appends later is not silently scoped to passport's users.
    rewrite_file "$SSHD_CONFIG" "$(config_without_block)
$MATCH_BEGIN
$(match_block)
Match all
$MATCH_END"
fi
if command -v restorecon >/dev/null 2>&1; then
    restorecon -R "$CONF_DIR" "$DROPIN_DIR" "$SSHD_CONFIG" >/dev/null 2>&1 || true
fi

if ! sshd_config_valid; then
    rollback
    die "$PASSPORT_EXIT_SSHD" \
        "sshd rejected the configuration; passport's change was rolled back: $SSHD_TEST_OUTPUT"
fi
CONFIG_PENDING=0
trap - EXIT
rm -f -- "$CONFIG_BACKUP" ${DROPIN_BACKUP:+"$DROPIN_BACKUP"}

# ---- 4. Reload sshd (validated above: a SIGHUP with a broken configuration would stop sshd) ----
reload_sshd() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        local unit
        for unit in ssh.service sshd.service; do
            if systemctl is-active --quiet "$unit"; then
                systemctl reload "$unit"
                echo "passport: reloaded $unit"
                return 0
            fi
        done
        echo "passport: sshd is not running as a service; the configuration applies when it starts"
        return 0
    fi
    if [ -s "$SSHD_PID_FILE" ]; then
        local pid comm=''
        pid="$(head -n 1 -- "$SSHD_PID_FILE")"
        if [[ $pid =~ ^[1-9][0-9]*$ ]]; then
            comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
        fi
        # A stale pid file may name an unrelated process by now, which SIGHUP would kill.
        if [ -n "$comm" ] && [ "$comm" = "${SSHD##*/}" ]; then
            kill -HUP "$pid"
            echo "passport: sent SIGHUP to sshd (pid $pid)"
            return 0
        fi
    fi
    echo "passport: no running sshd found; the configuration applies when it starts"
}
reload_sshd

# ---- 5. Host keys, for the client's known_hosts ----
echo '--- passport host keys ---'
for key_file in "$SSH_DIR"/ssh_host_*_key.pub; do
    [ -f "$key_file" ] || continue
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s\n' "$line"
    done <"$key_file"
done
echo '--- end host keys ---'
echo "passport: user $PASSPORT_USER is ready"

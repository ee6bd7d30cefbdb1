# ---- passport: revoke (static text) ----
# Removes the user and everything that lets it in. ca.pub and the sshd configuration stay: other
# passport users on this host may still rely on them.

if ! user_exists; then
    # Nothing to remove. Clear what an interrupted earlier run may have left (passport's own files).
    rm -f -- "$PRINCIPALS_FILE" "$MARKER"
    echo "passport: user $PASSPORT_USER does not exist; nothing to revoke"
    exit 0
fi
[ -f "$MARKER" ] || die "$PASSPORT_EXIT_FOREIGN" \
    "user $PASSPORT_USER exists but was not created by passport (no $MARKER); refusing to touch it"

# 1. No new logins. Without its principals file no certificate is accepted for the user; an expired
#    account also fails PAM's account check (su, cron and other services).
rm -f -- "$PRINCIPALS_FILE"
usermod --expiredate 1 -- "$PASSPORT_USER"

# 2. End what is running: sessions first, then any process left (daemons, nohup, screen).
# By effective and by real uid: a setuid program started by the user runs with another euid.
has_processes() { pgrep -u "$PASSPORT_USER" >/dev/null 2>&1 || pgrep -U "$PASSPORT_USER" >/dev/null 2>&1; }
for _ in 1 2 3 4 5 6 7 8 9 10; do
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

# 3. Remove the account, its home, mail spool and crontab (a later user of the same name, i.e. the
#    same requester, must not inherit any of it).
if command -v crontab >/dev/null 2>&1; then
    crontab -r -u "$PASSPORT_USER" >/dev/null 2>&1 || true
fi
rc=0
userdel --remove -- "$PASSPORT_USER" || rc=$?
case "$rc" in
    0) ;;
    6) echo "passport: user $PASSPORT_USER disappeared meanwhile" ;;
    # The account is gone (access is revoked) but part of its home or mail spool could not be removed.
    12) echo "passport: warning: removed $PASSPORT_USER but not all of its home directory" >&2 ;;
    *) die 1 "userdel failed with exit code $rc" ;;
esac
rm -f -- "$MARKER"
echo "passport: revoked user $PASSPORT_USER"

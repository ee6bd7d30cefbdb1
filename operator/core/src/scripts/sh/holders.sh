# ---- passport: holders (static text) ----
# Several access requests of one requester share one user. The marker lists those holding it, one
# line each: `holder=<AccessRequest UID> <namespace/name>`, and when each one's access ends:
# `expires=<AccessRequest UID> <seconds since the epoch>` (absent for holders recorded by versions
# that did not record it). Provisioning adds its holder, revocation removes its own, and only the
# last one to go removes the user. All under the lock taken above. The principals file and the
# account's expiry are derived from the marker (write_principals, account_expiry below).
#
# Upgrade rule. Markers written before holders existed hold one line `request=<namespace/name>` (the
# request provisioned last). Such a line counts as one unknown holder standing for every request
# that provisioned the user before the upgrade:
#  - provisioning the request it names adopts it: the line becomes that request's holder line;
#  - the first revoke of a holder the marker has never seen releases it: only a request from before
#    the upgrade can be such a holder. `released=<UID>` lines remember the holders revoked while the
#    old line remains, so that a retried revoke cannot be mistaken for one of them.
# The requests from before the upgrade share the one line, so the first of them to end ends the
# access (unless the others provisioned again since): ending access early is preferred to a user
# that no revoke would ever remove.
MARKER_AWK='
function id_of(line) { sub(/^[a-z]+=/, "", line); sub(/ .*/, "", line); return line "" }
BEGIN {
    h = ENVIRON["P_HOLDER"] ""; r = ENVIRON["P_REQUEST"] ""; add = ENVIRON["P_ACTION"] == "add"
    e = ENVIRON["P_EXPIRES"] ""
}
{ line[NR] = $0 }
/^holder=/ && id_of($0) == h { listed = 1 }
/^released=/ && id_of($0) == h { seen = 1 }
# Expiry only ever moves later: a provisioning command delivered late (after the one of an
# extension) must not cut the access short.
/^expires=/ && id_of($0) == h { old = $2; if (old ~ /^[0-9]+$/ && (e == "" || old + 0 > e + 0)) e = old }
/^request=/ { legacy++; if (add && !adopt && substr($0, 9) == r) adopt = NR }
END {
    release = !add && !listed && !seen && legacy > 0
    left = legacy - (adopt > 0) - release
    for (i = 1; i <= NR; i++) {
        l = line[i]
        if (l == "" || (l ~ /^(holder|released|expires)=/ && id_of(l) == h)) continue
        if (l ~ /^released=/ && !left) continue
        if (l ~ /^request=/ && (i == adopt || (release && !dropped++))) continue
        print l
    }
    if (add) {
        print "holder=" h " " r
        if (e != "") print "expires=" h " " e
    } else if (left) print "released=" h
}'

# Prints marker file $2 with this script's holder added (action add, request $3, expiry
# PASSPORT_EXPIRES_AT) or removed (action remove). The request is free text: control characters
# become '?', so it stays on its line.
marker_update() {
    local request="${3-}"
    P_ACTION="$1" P_HOLDER="$PASSPORT_HOLDER" P_REQUEST="${request//[[:cntrl:]]/?}" \
        P_EXPIRES="${PASSPORT_EXPIRES_AT-}" awk "$MARKER_AWK" "$2"
}

# Rewrites the marker through marker_update (same arguments, without the file).
update_marker() {
    local content
    content="$(marker_update "$1" "$MARKER" "${2-}")"
    write_file "$MARKER" 0600 "$content"
}

# How many requests hold the user according to the marker.
marker_holders() {
    grep -c -e '^holder=' -e '^request=' -- "$MARKER" || true
}

# ---- principals: one per request ----
# A certificate carries the principal of the one request it was issued for (`passport-<UID>`, see
# request_principal in the operator), and the principals file lists the principals of the requests
# holding the user, so a certificate of a request that does not hold the user here never logs in,
# even though the OS user (one per requester) is the same. Each line carries its request's expiry
# (expiry-time), so that it stops working by itself should the revoke never arrive.
PRINCIPAL_PREFIX='passport-'

# Prints "<UID> <expiry>" per holder of the marker: expiry in seconds since the epoch, or '-' if the
# marker does not record it; the UID is '-' for a holder from before holders existed (request=).
marker_expiries() {
    [ -f "$MARKER" ] || return 0
    awk '
    function id_of(line) { sub(/^[a-z]+=/, "", line); sub(/ .*/, "", line); return line "" }
    /^holder=/ { ids[++n] = id_of($0) }
    /^request=/ { ids[++n] = "-" }
    /^expires=/ && $2 ~ /^[0-9]+$/ { expires[id_of($0)] = $2 }
    END { for (i = 1; i <= n; i++) print ids[i], (ids[i] in expires ? expires[ids[i]] : "-") }
    ' "$MARKER"
}

# How this host's sshd reads expiry-time: "utc" (OpenSSH 9.1 and later take a Z suffix), "local"
# (7.7 to 9.0: the system time zone), "none" (before 7.7, which rejects the whole line: expiry is
# left to the certificates and the account). An sshd whose version cannot be read counts as local.
SSHD="${PASSPORT_SSHD:-/usr/sbin/sshd}"
sshd_expiry_style() {
    local version
    # sshd -V prints the version (OpenSSH 9.0 on); older ones print it in their usage message.
    version="$("$SSHD" -V 2>&1 </dev/null || true)"
    if [[ $version =~ OpenSSH_([0-9]+)\.([0-9]+) ]]; then
        local major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
        if ((major > 9 || (major == 9 && minor >= 1))); then
            echo utc
        elif ((major > 7 || (major == 7 && minor >= 7))); then
            echo local
        else
            echo none
        fi
    else
        echo local
    fi
}

# Rewrites the principals file from the marker: one line per holder with its principal, preceded by
# expiry-time="<expiry>" where the marker records the expiry and sshd understands it. Without
# holders the file goes.
write_principals() {
    local style id epoch line lines=''
    style="$(sshd_expiry_style)"
    while read -r id epoch; do
        [ "$id" != - ] || continue
        line="$PRINCIPAL_PREFIX$id"
        if [ "$epoch" != - ] && [ "$style" = utc ]; then
            line="expiry-time=\"$(date -u -d "@$epoch" +%Y%m%d%H%M%SZ)\" $line"
        elif [ "$epoch" != - ] && [ "$style" = local ]; then
            # sshd reads the time in its own (the system's) time zone, not a TZ this script inherited.
            line="expiry-time=\"$(env -u TZ date -d "@$epoch" +%Y%m%d%H%M%S)\" $line"
        fi
        lines="$lines$line"$'\n'
    done < <(marker_expiries)
    if [ -n "$lines" ]; then
        install_dir "$CONF_DIR" 0755
        install_dir "$PRINCIPALS_DIR" 0755
        write_file "$PRINCIPALS_FILE" 0644 "${lines%$'\n'}"
    else
        rm -f -- "$PRINCIPALS_FILE"
    fi
}

# The account's expiry date for usermod --expiredate: the day after the UTC date of the latest
# expiry among the holders (shadow counts whole days, and the account works until the day it
# expires), or '' (never) while a holder's expiry is unknown. A backstop for a revoke that never
# arrives; the principals lines and the certificates end the access on the second.
account_expiry() {
    local id epoch latest=0
    while read -r id epoch; do
        if [ "$epoch" = - ]; then
            return 0
        fi
        if ((epoch > latest)); then latest="$epoch"; fi
    done < <(marker_expiries)
    ((latest > 0)) || return 0
    date -u -d "@$(((latest / 86400 + 1) * 86400))" +%Y-%m-%d
}

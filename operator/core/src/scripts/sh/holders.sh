# ---- passport: holders (static text) ----
# Several access requests of one requester share one user. The marker lists those holding it, one
# line each: `holder=<AccessRequest UID> <namespace/name>`. Provisioning adds its holder, revocation
# removes its own, and only the last one to go removes the user. All under the lock taken above.
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
BEGIN { h = ENVIRON["P_HOLDER"] ""; r = ENVIRON["P_REQUEST"] ""; add = ENVIRON["P_ACTION"] == "add" }
{ line[NR] = $0 }
/^holder=/ && id_of($0) == h { listed = 1 }
/^released=/ && id_of($0) == h { seen = 1 }
/^request=/ { legacy++; if (add && !adopt && substr($0, 9) == r) adopt = NR }
END {
    release = !add && !listed && !seen && legacy > 0
    left = legacy - (adopt > 0) - release
    for (i = 1; i <= NR; i++) {
        l = line[i]
        if (l == "" || (l ~ /^(holder|released)=/ && id_of(l) == h)) continue
        if (l ~ /^released=/ && !left) continue
        if (l ~ /^request=/ && (i == adopt || (release && !dropped++))) continue
        print l
    }
    if (add) print "holder=" h " " r
    else if (left) print "released=" h
}'

# Prints marker file $2 with this script's holder added (action add, request $3) or removed (action
# remove). The request is free text: control characters become '?', so it stays on its line.
marker_update() {
    local request="${3-}"
    P_ACTION="$1" P_HOLDER="$PASSPORT_HOLDER" P_REQUEST="${request//[[:cntrl:]]/?}" \
        awk "$MARKER_AWK" "$2"
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

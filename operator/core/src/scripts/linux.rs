//! Bash scripts for Linux instances (`AWS-RunShellScript`): provision a certificate-only user, revoke
//! it, and read the host keys the provisioning script reports.
//!
//! A script is a generated header (shebang, `set -euo pipefail`, quoted assignments) followed by the
//! static text in `sh/`. The static parts never contain request data; they only read the variables
//! the header assigns.
//!
//! The scripts honour these environment variables, meant for tests and unusual hosts:
//! `PASSPORT_SSHD` (sshd binary, default `/usr/sbin/sshd`), `PASSPORT_SSHD_PID` (pid file used when
//! systemd is not running, default `/run/sshd.pid`), `PASSPORT_SSH_DIR` (default `/etc/ssh`),
//! `PASSPORT_STATE_DIR` (ownership markers and the uid high-water mark, default `/var/lib/passport`),
//! `PASSPORT_UID_MIN` (start of passport's uid range, default 2000000000). Revocation also reads
//! `PASSPORT_TMP_DIRS` (colon-separated, default `/tmp:/var/tmp:/dev/shm`), `PASSPORT_SETUID_ROOTS`
//! (colon-separated; default: the local filesystems listed in `PASSPORT_MOUNTS`, default
//! `/proc/self/mounts`) and `PASSPORT_SYSVIPC_DIR` (default `/proc/sysvipc`).

use super::quote::sh_quote;
use super::{
    EXIT_FOREIGN_USER, EXIT_INVALID_INPUT, EXIT_REVOKED, EXIT_SSHD_CONFIG, ScriptError, checked_expiry,
    checked_holder, checked_request, checked_username,
};
#[cfg(doc)]
use crate::ssh_ca::request_principal;
use jiff::Timestamp;
use ssh_key::{Algorithm, PublicKey};

/// Line the provisioning script prints before the host's public keys.
pub const HOST_KEYS_BEGIN: &str = "--- passport host keys ---";
/// Line the provisioning script prints after the host's public keys.
pub const HOST_KEYS_END: &str = "--- end host keys ---";

const COMMON: &str = include_str!("sh/common.sh");
const HOLDERS: &str = include_str!("sh/holders.sh");
const PROVISION: &str = include_str!("sh/provision.sh");
const REVOKE: &str = include_str!("sh/revoke.sh");

/// What the provisioning script needs.
#[derive(Debug, Clone, Copy)]
pub struct LinuxProvision<'a> {
    /// The passport username (`rs-<8 hex>[-<suffix>]`).
    pub username: &'a str,
    /// OpenSSH public keys of the user CA, one per entry: Ed25519 and possibly RSA, and during a
    /// rotation the old and the new key of each. Comments are dropped.
    pub ca_public_keys: &'a [String],
    /// The AccessRequest as `namespace/name`; recorded in the ownership marker, never executed.
    pub request: &'a str,
    /// The AccessRequest's UID: the holder this provisioning adds to the user's marker. Its
    /// certificates carry the principal `passport-<holder>` (see [`request_principal`]).
    pub holder: &'a str,
    /// The AccessRequest's `expiresAt`: the holder's principal line carries it as `expiry-time`, and
    /// the account expires the day after (see `account_expiry` in `sh/holders.sh`). Provisioning
    /// again with a later one moves both; an earlier one changes nothing.
    pub expires_at: Timestamp,
}

/// Builds the bash script that creates (or refreshes) the user and enables certificate login for it.
///
/// The script is idempotent: provisioning again refreshes the user and lists the holder once. A new
/// user gets a uid (and group id) passport never handed out before on the host. The script refuses
/// (exit [`EXIT_FOREIGN_USER`]) to touch an existing account passport did not create, validates the
/// sshd configuration before and after its change, rolls the change back if sshd rejects it (exit
/// [`EXIT_SSHD_CONFIG`]), reloads sshd, and prints the host keys between [`HOST_KEYS_BEGIN`] and
/// [`HOST_KEYS_END`] (see [`parse_host_keys`]). If a revoke of the same holder already ran on the
/// host (it left a tombstone), the script changes nothing and exits with [`EXIT_REVOKED`].
pub fn linux_provision_script(p: &LinuxProvision<'_>) -> Result<String, ScriptError> {
    let username = checked_username(p.username)?;
    let request = checked_request(p.request)?;
    let holder = checked_holder(p.holder)?;
    let expires_at = checked_expiry(p.expires_at)?;
    if p.ca_public_keys.is_empty() {
        return Err(ScriptError::NoCaKeys);
    }
    let mut keys = String::new();
    for (i, line) in p.ca_public_keys.iter().enumerate() {
        let key = ca_key(i + 1, line)?;
        keys.push_str("    ");
        keys.push_str(&sh_quote("ca_public_keys", &key)?);
        keys.push('\n');
    }
    let assignments = format!(
        "PASSPORT_USER={}\nPASSPORT_HOLDER={}\nPASSPORT_REQUEST={}\nPASSPORT_EXPIRES_AT={}\n\
         PASSPORT_CA_KEYS=(\n{keys})\n",
        sh_quote("username", username)?,
        sh_quote("holder", holder)?,
        sh_quote("request", request)?,
        sh_quote("expires_at", &expires_at.to_string())?,
    );
    Ok(assemble("provision a just-in-time user", &assignments, PROVISION))
}

/// Builds the bash script that records `holder` (the AccessRequest's UID) as revoked on the host (a
/// tombstone that makes a late provisioning of it exit with [`EXIT_REVOKED`]; tombstones older than 7
/// days are pruned), removes it from the user's marker and, if no other request holds the user, ends
/// its sessions and processes (with one `kill(-1)` made as the user, where `setpriv` exists, then
/// `pkill`), removes what it left behind (at jobs, System V IPC objects, its files in the temporary
/// directories, setuid and setgid files it owns) and removes the user and its group.
///
/// While other requests hold the user, only this request's line leaves the principals file (its
/// certificates no longer log in; the others' still do) and the user stays (exit 0). Otherwise the
/// principals file goes first, so no new login can start while sessions are being ended. A missing user and a holder
/// that is not listed are success; a user passport did not create is never touched (exit
/// [`EXIT_FOREIGN_USER`]). The CA keys and the sshd configuration stay for other passport users.
pub fn linux_revoke_script(username: &str, holder: &str) -> Result<String, ScriptError> {
    let username = checked_username(username)?;
    let holder = checked_holder(holder)?;
    let assignments = format!(
        "PASSPORT_USER={}\nPASSPORT_HOLDER={}\n",
        sh_quote("username", username)?,
        sh_quote("holder", holder)?
    );
    Ok(assemble("revoke a just-in-time user", &assignments, REVOKE))
}

/// Header + common part + action. The shebang must stay the first line.
fn assemble(purpose: &str, assignments: &str, action: &str) -> String {
    format!(
        "#!/bin/bash\n\
         # passport: {purpose}. Generated by the passport operator; the assignments below are data.\n\
         # If started by sh rather than bash (e.g. `sh script.sh`), run again under bash.\n\
         if [ -z \"${{BASH_VERSION:-}}\" ]; then\n\
         \x20   case \"$0\" in /*) [ -f \"$0\" ] && exec /bin/bash \"$0\" \"$@\" ;; esac\n\
         \x20   echo 'passport: this script needs bash' >&2\n\
         \x20   exit {EXIT_INVALID_INPUT}\n\
         fi\n\
         set -euo pipefail\n\
         readonly PASSPORT_EXIT_INVALID={EXIT_INVALID_INPUT} PASSPORT_EXIT_FOREIGN={EXIT_FOREIGN_USER} \
         PASSPORT_EXIT_SSHD={EXIT_SSHD_CONFIG} PASSPORT_EXIT_REVOKED={EXIT_REVOKED}\n\
         {assignments}\n{COMMON}\n{HOLDERS}\n{action}"
    )
}

/// Validates one CA key and returns it as `<algorithm> <base64>`. `index` counts from 1.
///
/// The key must parse as an OpenSSH public key of an algorithm sshd accepts for a CA; DSA (disabled
/// in current OpenSSH) and unknown algorithms are refused. The comment is dropped: it serves no
/// purpose on the instance and is the one free-text part of the line.
fn ca_key(index: usize, line: &str) -> Result<String, ScriptError> {
    let invalid = ScriptError::InvalidCaKey { index };
    let line = line.trim();
    if line.chars().any(char::is_control) {
        return Err(invalid);
    }
    let key = PublicKey::from_openssh(line).map_err(|_| invalid.clone())?;
    if matches!(key.algorithm(), Algorithm::Dsa | Algorithm::Other(_)) {
        return Err(invalid);
    }
    algorithm_and_data(line).ok_or(invalid)
}

fn is_usable_algorithm(algorithm: &Algorithm) -> bool {
    !matches!(algorithm, Algorithm::Other(_))
}

/// The first two fields of a key line.
fn algorithm_and_data(line: &str) -> Option<String> {
    let mut fields = line.split_whitespace();
    Some(format!("{} {}", fields.next()?, fields.next()?))
}

/// Extracts the host keys from the provisioning script's stdout: the well-formed `<type> <base64>`
/// lines (comments stripped, duplicates removed) between [`HOST_KEYS_BEGIN`] and [`HOST_KEYS_END`].
///
/// Only the last section counts, and every line must decode as an OpenSSH public key, so output
/// truncated by SSM or junk printed by other commands cannot produce a bogus key.
pub fn parse_host_keys(stdout: &str) -> Vec<String> {
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let Some(begin) = lines.iter().rposition(|line| *line == HOST_KEYS_BEGIN) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = Vec::new();
    for line in lines[begin + 1..]
        .iter()
        .take_while(|line| **line != HOST_KEYS_END)
    {
        let Some(candidate) = algorithm_and_data(line) else {
            continue;
        };
        let well_formed =
            PublicKey::from_openssh(&candidate).is_ok_and(|key| is_usable_algorithm(&key.algorithm()));
        if well_formed && !keys.contains(&candidate) {
            keys.push(candidate);
        }
    }
    keys
}

#[cfg(test)]
mod tests;

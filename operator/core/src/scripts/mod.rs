//! The scripts passport runs on instances through AWS SSM Run Command.
//!
//! Everything here is a pure function from validated inputs to script text; nothing in this module
//! performs I/O. The operator sends the text as the single `commands` entry of `AWS-RunShellScript`
//! (Linux) or `AWS-RunPowerShellScript` (Windows) and interprets the exit code with the `EXIT_*`
//! constants below.
//!
//! # How values from a request reach a script
//!
//! Every value that comes from a request (username, holder, request name, CA keys, the Windows
//! password's one-time public key) is validated on the Rust side and then enters the script in
//! exactly one place: a quoted variable assignment in the script's header, produced by the functions
//! in [`quote`]. No password is ever in a script (see [`windows_secret`]). The body of each script
//! is static text (see the `sh/` and `ps/` directories next to this file) that only ever refers to
//! those variables, always double-quoted in bash. That keeps the generated code auditable: no request
//! data is ever spliced into code, comments or command lines.
//!
//! # Holders
//!
//! Several AccessRequests of one requester share one OS user on an instance. The instance itself
//! records which requests hold the user (by AccessRequest UID, the `holder` of each builder):
//! provisioning adds its holder, revocation removes it, and only the revocation of the last holder
//! removes the user. The operator therefore sends a revoke for every request that ends, without
//! having to know about the others.
//!
//! # Principals
//!
//! Certificates carry their AccessRequest's own principal, `passport-<UID>`
//! ([`crate::ssh_ca::request_principal`]), and the user's principals file lists one line per holder,
//! rewritten from the marker by every provisioning and revoke, so a certificate logs in only where
//! its own request holds the user. Each line carries `expiry-time` (the request's `expiresAt`, as
//! this host's sshd reads it), and the account expires the day after the latest holder's
//! `expiresAt`: backstops should no revoke ever arrive. Provisioning again with a later expiry moves
//! both (an extension); an earlier one changes nothing (a late command). sshd accepts nothing but
//! these certificates for `rs-*` users: no `authorized_keys`, password or keyboard-interactive login. The upgrade rule for users created before holders existed is
//! described in `sh/holders.sh` (Linux) and `ps/common.ps1` (Windows).
//!
//! # Exit codes
//!
//! All four scripts share one convention so the operator can tell an operational failure from a
//! refusal: `0` success (including "nothing to do"), [`EXIT_INVALID_INPUT`] when the script refuses
//! its inputs or environment, [`EXIT_FOREIGN_USER`] when an account with the passport name exists but
//! was not created by passport (it is never touched), [`EXIT_SSHD_CONFIG`] when sshd rejects its
//! configuration (Linux only; passport's change has been rolled back), [`EXIT_REVOKED`] when a
//! provisioning script finds that its holder was already revoked on the host (it changes nothing).
//! Anything else is an unexpected failure of a command the script ran.
//!
//! # Revoked holders
//!
//! A provisioning command can reach an instance late (after the operator stopped waiting for it) and
//! run after the revoke of its own request, which no later revoke would undo. So every revoke leaves
//! a tombstone for its holder on the instance (`/var/lib/passport/revoked/<holder>`,
//! `%ProgramData%\passport\revoked\<holder>`), written under the host lock before anything else,
//! even when the user does not exist or the holder is not listed; provisioning a tombstoned holder
//! exits with [`EXIT_REVOKED`]. Holders (AccessRequest UIDs) never repeat, so a tombstone never
//! blocks a legitimate request. Revokes prune tombstones older than 7 days.

mod linux;
mod quote;
mod username;
mod windows;
pub mod windows_secret;

#[cfg(test)]
mod sandbox;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cleanup;
#[cfg(test)]
mod tests_holders;
#[cfg(test)]
mod tests_principals;

pub use linux::{
    HOST_KEYS_BEGIN, HOST_KEYS_END, LinuxProvision, linux_provision_script, linux_revoke_script,
    parse_host_keys,
};
pub use quote::{ps_ascii_expr, ps_quote, sh_quote};
pub use username::{
    MAX_SUFFIX_LEN, MAX_USERNAME_LEN, USERNAME_PREFIX, domain_username, is_passport_username, masked_username,
};
pub use windows::{
    PASSWORD_LEN, WindowsProvision, windows_extend_script, windows_provision_script, windows_revoke_script,
};

/// Exit code of a script that refuses its inputs or environment (bad username, not root, no sshd).
pub const EXIT_INVALID_INPUT: i32 = 2;
/// Exit code when an account with the requested name exists but passport did not create it.
pub const EXIT_FOREIGN_USER: i32 = 3;
/// Exit code when `sshd -t` rejects the configuration; passport's change has been rolled back.
pub const EXIT_SSHD_CONFIG: i32 = 4;
/// Exit code of a provisioning script whose holder (AccessRequest UID) was already revoked on the
/// host: a late provisioning command that must not bring the user back. Nothing was changed.
pub const EXIT_REVOKED: i32 = 5;

/// Longest holder accepted: a Kubernetes UID is 36 characters; this leaves room for other forms.
pub const MAX_HOLDER_LEN: usize = 64;

/// Longest `request` ("namespace/name") accepted. A Kubernetes namespace is at most 63 bytes and an
/// object name at most 253, so this leaves room while bounding what an SSM command carries.
pub const MAX_REQUEST_LEN: usize = 512;

/// Why a script could not be generated. Messages name the offending field; they never include a
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The username does not have the `rs-<8 hex>[-<suffix>]` form.
    #[error("username {0:?} is not a passport username (rs-<8 hex>[-<suffix>])")]
    InvalidUsername(String),
    /// The holder (the AccessRequest's UID) is not 1 to [`MAX_HOLDER_LEN`] characters of `0-9`,
    /// `a-z` and `-`.
    #[error("field holder {0:?} is not a Kubernetes UID (1 to 64 characters of 0-9, a-z and -)")]
    InvalidHolder(String),
    /// No CA public key was given, so no certificate could ever be accepted.
    #[error("no CA public keys given: at least one OpenSSH public key of the user CA is required")]
    NoCaKeys,
    /// A CA public key is not a single well-formed OpenSSH public key line. `index` counts from 1.
    #[error("CA public key {index} is not an OpenSSH public key line")]
    InvalidCaKey {
        /// Position of the key in the list, counting from 1.
        index: usize,
    },
    /// A value contains a NUL byte, which neither bash nor PowerShell can carry in a string.
    #[error("field {field} contains a NUL byte")]
    NulByte {
        /// Name of the field.
        field: &'static str,
    },
    /// A value is longer than the script accepts.
    #[error("field {field} is {len} bytes long; at most {max} are accepted")]
    TooLong {
        /// Name of the field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The expiry is not between 1970 and the year 9999 (whole seconds after the epoch).
    #[error("expiresAt {0} is out of range (after 1970-01-01, before 10000-01-01)")]
    InvalidExpiry(jiff::Timestamp),
    /// The one-time public key for the Windows password is unusable (not RSA of 2048 bits or more).
    #[error("the password key is not an RSA public key of at least 2048 bits")]
    InvalidPasswordKey,
}

/// Checks the username and returns it, for use by the script builders.
fn checked_username(username: &str) -> Result<&str, ScriptError> {
    if is_passport_username(username) {
        Ok(username)
    } else {
        // Hostile input can be arbitrarily long; keep the error (and the logs it ends up in) short.
        let shown: String = username.chars().take(64).collect();
        Err(ScriptError::InvalidUsername(shown))
    }
}

/// Checks the holder (the AccessRequest's UID): it is a line key in the marker the scripts keep.
fn checked_holder(holder: &str) -> Result<&str, ScriptError> {
    let valid = (1..=MAX_HOLDER_LEN).contains(&holder.len())
        && holder
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-');
    if valid {
        Ok(holder)
    } else {
        Err(ScriptError::InvalidHolder(holder.chars().take(64).collect()))
    }
}

/// Checks the request's expiry and returns it in whole seconds since the epoch (rounded down: the
/// access never outlives it). Sub-second precision is dropped; a time at or before the epoch, or
/// past what `date` and `Get-Date` handle, is refused.
fn checked_expiry(expires_at: jiff::Timestamp) -> Result<i64, ScriptError> {
    const YEAR_10000: i64 = 253_402_300_800;
    let secs = expires_at.as_second();
    if secs <= 0 || secs >= YEAR_10000 {
        return Err(ScriptError::InvalidExpiry(expires_at));
    }
    Ok(secs)
}

/// Checks free-form request metadata ("namespace/name") for length; NULs are caught when quoting.
fn checked_request(request: &str) -> Result<&str, ScriptError> {
    if request.len() > MAX_REQUEST_LEN {
        return Err(ScriptError::TooLong {
            field: "request",
            len: request.len(),
            max: MAX_REQUEST_LEN,
        });
    }
    Ok(request)
}

//! PowerShell scripts for Windows instances (`AWS-RunPowerShellScript`): provision a user for RDP,
//! move its expiry after an extension, and revoke it.
//!
//! As on Linux, a script is a generated header of quoted assignments followed by static text (in
//! `ps/`). Every value is written with [`ps_ascii_expr`], so the whole script is printable ASCII and
//! means the same whether Windows PowerShell reads it as UTF-8 or in the ANSI code page.
//!
//! # Passwords
//!
//! No password is ever in a script: the provisioning script makes a fresh random one on the instance
//! (28 characters from the operating system's CSPRNG, at least one upper-case letter, lower-case
//! letter, digit and symbol), sets it, and prints it encrypted to the one-time public key it was given
//! (see [`super::windows_secret`]). The password never becomes a PowerShell string or a cmdlet
//! argument (it goes from a `char[]` into a `SecureString` and the encryption), so script block and
//! module logging do not record it either.
//!
//! # Domain controllers
//!
//! The scripts themselves tell a domain controller (`Win32_ComputerSystem.DomainRole` 4 or 5), where
//! there are no local accounts. There the account is a domain account (`New-ADUser`) named
//! `rs-<masked id>-<suffix>`, the suffix being the first 6 hex characters of SHA-256 over
//! `"<request UID>/<computer name, lower case>"`: one account per request and controller, so neither
//! two requests nor two controllers of one domain in one request ever share (and reset the password
//! of) one domain account. The revoke recomputes the same name. The script reports the account it set
//! up on a `passport-user:` line. Note that a domain controller only lets Remote Desktop Users log on
//! if its "Allow log on through Remote Desktop Services" policy includes them, which is not the
//! default.

use super::quote::ps_ascii_expr;
use super::windows_secret::{key_id, public_key_xml};
use super::{
    EXIT_FOREIGN_USER, EXIT_INVALID_INPUT, EXIT_REVOKED, ScriptError, checked_expiry, checked_holder,
    checked_request, checked_username,
};
use jiff::Timestamp;
use rsa::RsaPublicKey;

const COMMON: &str = include_str!("ps/common.ps1");
const PROVISION: &str = include_str!("ps/provision.ps1");
const REVOKE: &str = include_str!("ps/revoke.ps1");
const EXTEND: &str = include_str!("ps/extend.ps1");

/// Length of the passwords the provisioning script makes.
pub const PASSWORD_LEN: usize = 28;

/// What the provisioning script needs. Nothing in it is secret.
#[derive(Clone, Copy, Debug)]
pub struct WindowsProvision<'a> {
    /// The passport username (`rs-xxxxxxxx`); on a domain controller the script adds the suffix.
    pub username: &'a str,
    /// The one-time public key the script encrypts the password to; the operator keeps the private
    /// key (see [`super::windows_secret::PasswordKey`]).
    pub password_key: &'a RsaPublicKey,
    /// The AccessRequest as `namespace/name`; carried as data, never executed.
    pub request: &'a str,
    /// The AccessRequest's UID: the holder this provisioning adds to the account's holders file.
    pub holder: &'a str,
    /// The AccessRequest's `expiresAt`: the account expires then (the latest of its holders';
    /// never while a holder's is unknown). Provisioning again with a later one moves it.
    pub expires_at: Timestamp,
}

/// Builds the PowerShell script that records the holder, creates the user (or, if passport created it
/// earlier, resets its password and enables it) with a fresh password made on the instance, adds it
/// to Remote Desktop Users, and prints the password encrypted to `password_key` and the account's name.
///
/// An existing account whose description does not mark it as passport's is never touched (exit
/// [`EXIT_FOREIGN_USER`]). If a revoke of the same holder already ran on the host (it left a
/// tombstone in `%ProgramData%\passport\revoked`), the script changes nothing and exits with
/// [`EXIT_REVOKED`].
pub fn windows_provision_script(p: &WindowsProvision<'_>) -> Result<String, ScriptError> {
    let expires_at = checked_expiry(p.expires_at)?;
    let xml = public_key_xml(p.password_key).map_err(|_| ScriptError::InvalidPasswordKey)?;
    let key = format!(
        "$PassportExpiresAt = [long] {expires_at}\n\
         $PassportPasswordKeyId = {}\n\
         $PassportPasswordKey = {}\n",
        ps_ascii_expr("password key id", &key_id(p.password_key))?,
        ps_ascii_expr("password key", &xml)?,
    );
    let header = header("provision a just-in-time user", p.username, p.holder, p.request)?;
    Ok(format!("{header}{key}\n{COMMON}\n{PROVISION}"))
}

/// Builds the PowerShell script that records `holder` (the AccessRequest's UID) as revoked on the host
/// (a tombstone that makes a late provisioning of it exit with [`EXIT_REVOKED`]; tombstones older
/// than 7 days are pruned), removes it from the account's holders and, if no other request holds the
/// account, disables it, logs off its sessions, stops its processes, and removes the account and its
/// profile. While other requests hold the account nothing about it changes (exit 0). A missing user
/// and a holder that is not listed are success; an account passport did not create is never touched
/// (exit [`EXIT_FOREIGN_USER`]). On a domain controller it acts on the request's domain account.
pub fn windows_revoke_script(username: &str, holder: &str) -> Result<String, ScriptError> {
    let header = header("revoke a just-in-time user", username, holder, "")?;
    Ok(format!("{header}\n{COMMON}\n{REVOKE}"))
}

/// Builds the PowerShell script that moves this holder's recorded expiry, and the account's own, later
/// to `expires_at` after an extension (never earlier). A missing account, an account this holder does
/// not hold (revoked meanwhile) and an expiry already as late are success with nothing changed; an
/// account passport did not create is never touched (exit [`EXIT_FOREIGN_USER`]).
pub fn windows_extend_script(
    username: &str,
    holder: &str,
    expires_at: Timestamp,
) -> Result<String, ScriptError> {
    let expires_at = checked_expiry(expires_at)?;
    let header = header("extend a just-in-time user", username, holder, "")?;
    Ok(format!(
        "{header}$PassportExpiresAt = [long] {expires_at}\n\n{COMMON}\n{EXTEND}"
    ))
}

fn header(purpose: &str, username: &str, holder: &str, request: &str) -> Result<String, ScriptError> {
    let username = checked_username(username)?;
    // The base form only: on a domain controller the script adds the suffix itself.
    if username.matches('-').count() != 1 {
        return Err(ScriptError::InvalidUsername(username.to_owned()));
    }
    let holder = checked_holder(holder)?;
    let request = checked_request(request)?;
    Ok(format!(
        "# passport: {purpose}. Generated by the passport operator; the assignments below are data.\n\
         $ErrorActionPreference = 'Stop'\n\
         Set-StrictMode -Version 2.0\n\
         $PassportExitInvalid = {EXIT_INVALID_INPUT}\n\
         $PassportExitForeign = {EXIT_FOREIGN_USER}\n\
         $PassportExitRevoked = {EXIT_REVOKED}\n\
         $PassportUser = {}\n\
         $PassportHolder = {}\n\
         $PassportRequest = {}\n",
        ps_ascii_expr("username", username)?,
        ps_ascii_expr("holder", holder)?,
        ps_ascii_expr("request", request)?,
    ))
}

#[cfg(test)]
mod tests;

//! PowerShell scripts for Windows instances (`AWS-RunPowerShellScript`): provision a user for RDP,
//! revoke it, and generate its password.
//!
//! As on Linux, a script is a generated header of quoted assignments followed by static text (in
//! `ps/`). Every value is written with [`ps_ascii_expr`], so the whole script is printable ASCII and
//! means the same whether Windows PowerShell reads it as UTF-8 or in the ANSI code page.
//!
//! On a domain controller there are no local accounts: the user is a domain account (`New-ADUser`),
//! which is why callers use the `rs-xxxxxxxx-<suffix>` form of [`super::domain_username`] there.
//! Note that a domain controller only lets Remote Desktop Users log on if its "Allow log on through
//! Remote Desktop Services" policy includes them, which is not the default.

use super::quote::ps_ascii_expr;
use super::{
    EXIT_FOREIGN_USER, EXIT_INVALID_INPUT, EXIT_REVOKED, ScriptError, checked_expiry, checked_holder,
    checked_request, checked_username,
};
use jiff::Timestamp;
use rand::Rng;
use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use std::fmt;

const COMMON: &str = include_str!("ps/common.ps1");
const PROVISION: &str = include_str!("ps/provision.ps1");
const REVOKE: &str = include_str!("ps/revoke.ps1");

/// Length of the passwords [`generate_password`] makes.
pub const PASSWORD_LEN: usize = 28;
/// Shortest password [`windows_provision_script`] accepts.
const MIN_PASSWORD_LEN: usize = 14;
/// Longest password Windows accepts for an account.
const MAX_PASSWORD_LEN: usize = 127;

/// Character classes of generated passwords. Look-alikes (I, O, l, 0, 1) are left out because the
/// password may have to be typed into an RDP login screen; symbols exclude quotes, backticks and
/// `$`, so the password reads the same in any PowerShell string and any shell.
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"!#%*+,-.:=?@^_~";

/// What the provisioning script needs. `Debug` never shows the password.
#[derive(Clone, Copy)]
pub struct WindowsProvision<'a> {
    /// The passport username; on a domain controller, the `rs-xxxxxxxx-<suffix>` form.
    pub username: &'a str,
    /// The account's password (see [`generate_password`]). It appears in the script only as the
    /// quoted argument of `ConvertTo-SecureString`.
    pub password: &'a str,
    /// The AccessRequest as `namespace/name`; carried as data, never executed.
    pub request: &'a str,
    /// The AccessRequest's UID: the holder this provisioning adds to the account's holders file.
    pub holder: &'a str,
    /// Whether the instance is a domain controller, where accounts are domain accounts.
    pub domain_controller: bool,
    /// The AccessRequest's `expiresAt`: the account expires then (the latest of its holders';
    /// never while a holder's is unknown). Provisioning again with a later one moves it.
    pub expires_at: Timestamp,
}

impl fmt::Debug for WindowsProvision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowsProvision")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("request", &self.request)
            .field("holder", &self.holder)
            .field("domain_controller", &self.domain_controller)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Builds the PowerShell script that records the holder, creates the user (or, if passport created it
/// earlier, resets its password and enables it) and adds it to Remote Desktop Users.
///
/// An existing account whose description does not mark it as passport's is never touched (exit
/// [`EXIT_FOREIGN_USER`]). If a revoke of the same holder already ran on the host (it left a
/// tombstone in `%ProgramData%\passport\revoked`), the script changes nothing and exits with
/// [`EXIT_REVOKED`].
pub fn windows_provision_script(p: &WindowsProvision<'_>) -> Result<String, ScriptError> {
    check_password(p.password)?;
    let expires_at = checked_expiry(p.expires_at)?;
    let secret = format!(
        "$PassportExpiresAt = [long] {expires_at}\n\
         $PassportPassword = ConvertTo-SecureString -String {} -AsPlainText -Force\n",
        ps_ascii_expr("password", p.password)?
    );
    let header = header(
        "provision a just-in-time user",
        p.username,
        p.holder,
        p.request,
        p.domain_controller,
    )?;
    Ok(format!("{header}{secret}\n{COMMON}\n{PROVISION}"))
}

/// Builds the PowerShell script that records `holder` (the AccessRequest's UID) as revoked on the host
/// (a tombstone that makes a late provisioning of it exit with [`EXIT_REVOKED`]; tombstones older
/// than 7 days are pruned), removes it from the account's holders and, if no other request holds the
/// account, disables it, logs off its sessions, stops its processes, and removes the account and its
/// profile. While other requests hold the account nothing about it changes (exit 0). A missing user
/// and a holder that is not listed are success; an account passport did not create is never touched
/// (exit [`EXIT_FOREIGN_USER`]).
pub fn windows_revoke_script(
    username: &str,
    holder: &str,
    domain_controller: bool,
) -> Result<String, ScriptError> {
    let header = header(
        "revoke a just-in-time user",
        username,
        holder,
        "",
        domain_controller,
    )?;
    Ok(format!("{header}\n{COMMON}\n{REVOKE}"))
}

fn header(
    purpose: &str,
    username: &str,
    holder: &str,
    request: &str,
    domain_controller: bool,
) -> Result<String, ScriptError> {
    let username = checked_username(username)?;
    let holder = checked_holder(holder)?;
    let request = checked_request(request)?;
    let domain_controller = if domain_controller { "$true" } else { "$false" };
    Ok(format!(
        "# passport: {purpose}. Generated by the passport operator; the assignments below are data.\n\
         $ErrorActionPreference = 'Stop'\n\
         Set-StrictMode -Version 2.0\n\
         $PassportExitInvalid = {EXIT_INVALID_INPUT}\n\
         $PassportExitForeign = {EXIT_FOREIGN_USER}\n\
         $PassportExitRevoked = {EXIT_REVOKED}\n\
         $PassportUser = {}\n\
         $PassportHolder = {}\n\
         $PassportRequest = {}\n\
         $PassportDomainController = {domain_controller}\n",
        ps_ascii_expr("username", username)?,
        ps_ascii_expr("holder", holder)?,
        ps_ascii_expr("request", request)?,
    ))
}

/// Rejects passwords Windows would refuse or that could not be typed. Never echoes the password.
fn check_password(password: &str) -> Result<(), ScriptError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(ScriptError::InvalidPassword("shorter than 14 characters"));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(ScriptError::InvalidPassword("longer than 127 characters"));
    }
    if password.contains('\0') {
        return Err(ScriptError::NulByte { field: "password" });
    }
    if password.chars().any(char::is_control) {
        return Err(ScriptError::InvalidPassword("contains a control character"));
    }
    Ok(())
}

/// Generates a [`PASSWORD_LEN`]-character password from the operating system's CSPRNG with at least
/// one upper-case letter, lower-case letter, digit and symbol, which satisfies Windows' complexity
/// rules. About 170 bits of entropy.
pub fn generate_password() -> String {
    let mut rng = OsRng;
    let classes = [UPPER, LOWER, DIGITS, SYMBOLS];
    let all = classes.concat();
    let mut password: Vec<u8> = classes
        .iter()
        .map(|class| class[rng.gen_range(0..class.len())])
        .collect();
    while password.len() < PASSWORD_LEN {
        password.push(all[rng.gen_range(0..all.len())]);
    }
    // The guaranteed characters must not sit at predictable positions.
    password.shuffle(&mut rng);
    password.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests;

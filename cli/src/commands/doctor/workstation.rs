//! Checks of this machine: the ssh client, AWS's session-manager-plugin, and the clock.

use std::time::Duration;

use jiff::SignedDuration;

use super::check::{Check, Status};

/// The first version `ssh -V` may report for RSA keys' certificates (rsa-sha2 certificate
/// signatures, which servers without SHA-1 demand).
pub const SSH_RSA_SHA2_CERTS: (u32, u32) = (8, 2);
/// The first OpenSSH with certificates of the kind passport issues (Ed25519 keys).
pub const SSH_ED25519_CERTS: (u32, u32) = (6, 5);
/// Clock skew that certificates (valid for minutes) still tolerate unnoticed.
pub const SKEW_OK: Duration = Duration::from_secs(5);
/// Clock skew beyond which the plugin misjudges whether its certificate is still valid.
pub const SKEW_FAIL: Duration = Duration::from_secs(60);

/// `ssh -V`'s version (`OpenSSH_9.2p1 Debian-2, OpenSSL 3.0.15` → 9.2), if it is OpenSSH.
pub fn openssh_version(said: &str) -> Option<(u32, u32)> {
    let rest = said.split("OpenSSH_").nth(1)?;
    let mut numbers = rest.split(|c: char| !c.is_ascii_digit());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// The ssh client: `said` is what `ssh -V` printed, or why it could not run.
pub fn ssh(said: &Result<String, String>) -> Check {
    let name = "ssh";
    let said = match said {
        Ok(said) => said.trim(),
        Err(why) => {
            let fix = "install the OpenSSH client (e.g. apt-get install openssh-client)";
            return Check::new(
                name,
                Status::Fail,
                format!("no ssh client: {why}"),
                Some(fix.into()),
            );
        }
    };
    let upgrade = || Some("upgrade the OpenSSH client to 8.2 or later".to_owned());
    match openssh_version(said) {
        None => Check::new(
            name,
            Status::Warn,
            format!("{said:?} is not OpenSSH; passport's ssh config is written for OpenSSH"),
            upgrade(),
        ),
        Some(v) if v < SSH_ED25519_CERTS => Check::new(
            name,
            Status::Fail,
            format!("OpenSSH {}.{} cannot use passport's certificates", v.0, v.1),
            upgrade(),
        ),
        Some(v) if v < SSH_RSA_SHA2_CERTS => Check::new(
            name,
            Status::Warn,
            format!(
                "OpenSSH {}.{}: Ed25519 certificates work, RSA ones need rsa-sha2 certificates (8.2)",
                v.0, v.1
            ),
            Some("use --key-type ed25519 (the default), or upgrade OpenSSH to 8.2 or later".into()),
        ),
        Some(v) => Check::ok(
            name,
            format!("OpenSSH {}.{}: Ed25519 and RSA (rsa-sha2) certificates", v.0, v.1),
        ),
    }
}

/// AWS's session-manager-plugin: `said` is what `--version` printed, or why it could not run.
/// `direct` says PASSPORT_DIRECT_ENDPOINTS sends tunnels around Session Manager.
pub fn session_manager_plugin(said: &Result<String, String>, direct: bool) -> Check {
    let name = "session-manager-plugin";
    match said {
        Ok(version) => Check::ok(name, format!("version {}", version.trim())),
        Err(why) if direct => Check::ok(
            name,
            format!("not needed: PASSPORT_DIRECT_ENDPOINTS reaches instances directly ({why})"),
        ),
        Err(why) => Check::new(
            name,
            Status::Fail,
            format!("cannot run it ({why}): connect and ssh tunnel through Session Manager"),
            Some(
                "install it: https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html"
                    .into(),
            ),
        ),
    }
}

/// The apiserver's clock against ours: `skew` is the server's time minus ours.
pub fn clock(skew: SignedDuration) -> Check {
    let name = "clock";
    let off = skew.unsigned_abs();
    let side = if skew.is_negative() { "behind" } else { "ahead of" };
    let message = format!("the API server's clock is {}s {side} yours", off.as_secs());
    let fix = || Some("synchronise this machine's clock (e.g. timedatectl set-ntp true)".to_owned());
    if off <= SKEW_OK {
        Check::ok(name, format!("within {}s of the API server's", SKEW_OK.as_secs()))
    } else if off <= SKEW_FAIL {
        Check::new(name, Status::Warn, message, fix())
    } else {
        Check::new(
            name,
            Status::Fail,
            format!("{message}: certificates last minutes, so the plugin misjudges whether they are valid"),
            fix(),
        )
    }
}

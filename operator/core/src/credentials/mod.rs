//! Credentials for an Active AccessRequest, without any secret crossing in clear.
//!
//! The CLI creates a CredentialRequest carrying a public key to certify and an age recipient (the
//! *sealing key*) it generated for this one request. The operator answers once, in the status:
//!
//! * **issued** (`Issued=True`): OpenSSH certificates for the key (principal: the AccessRequest's
//!   own, `passport-<UID>`, only; key id `namespace/name#serial uid=<AccessRequest UID>`;
//!   `source-address` from `spec.sourceCidrs` plus the instance's loopback, when given; valid from a
//!   little before now until min(now + TTL, `expiresAt`)), to log in as the request's OS user; the
//!   targets' host keys, Session Manager tunnel parameters, and
//!   secrets sealed to the sealing key: scoped STS credentials ([`policy`]) and, per Windows target,
//!   the request's password ([`seal`]);
//! * **refused** (`Issued=False`): a reason and a message naming the field and the fix
//!   ([`decide::Reason`]).
//!
//! The AccessRequest's status is never trusted alone: it must agree with the spec
//! ([`decide::plan`], [`decide::check_pinned_username`]): the user pinned for `spec.requester`, the
//! approval recorded (`approvedAt`, `Approved=True`), only targets `spec.targets` names and the status
//! shows Ready, and `expiresAt` no later than `activatedAt` plus the approved duration.
//!
//! Per AccessRequest, a live certificate for the same key is given again, and new ones are rate
//! limited ([`limit`]). Each new one is appended to the AccessRequest's `status.logbook`
//! ([`status::logbook_patch`]) before it is handed out.
//!
//! Everything here is pure: [`decide::plan`] validates and plans, [`limit::Ledger`] admits,
//! [`status`] settles the result. The operator's CredentialRequest controller does the I/O: reading
//! the AccessRequest, signing, AssumeRole, the logbook entry, writing the status, the logbook Event,
//! and deleting CredentialRequests an hour after they stopped being useful
//! ([`status::delete_after`]).

pub mod decide;
pub mod documents;
pub mod limit;
pub mod policy;
pub mod seal;
pub mod status;

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::duration::{DurationError, parse_go_duration};

pub use decide::{Inputs, Plan, Reason, Refusal, SessionPlan, check_pinned_username, plan};

/// How long certificates last unless `--certificate-ttl` says otherwise: long enough to log in (and
/// for a slow `ssh` to retry), short enough that a leaked certificate is soon useless. Sessions
/// already open are not cut when the certificate expires; revocation does that.
pub const DEFAULT_CERTIFICATE_TTL: Duration = Duration::from_secs(5 * 60);
/// The shortest `--certificate-ttl`.
pub const MIN_CERTIFICATE_TTL: Duration = Duration::from_secs(60);
/// The longest `--certificate-ttl`.
pub const MAX_CERTIFICATE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    #[error("--certificate-ttl: {0}")]
    Syntax(#[from] DurationError),
    #[error("--certificate-ttl must be between 1m and 1h, not {0}")]
    OutOfRange(String),
}

/// Parses `--certificate-ttl` / `PASSPORT_CERTIFICATE_TTL` (Go duration syntax, 1m to 1h).
pub fn parse_certificate_ttl(text: &str) -> Result<Duration, TtlError> {
    let ttl = parse_go_duration(text)?;
    if !(MIN_CERTIFICATE_TTL..=MAX_CERTIFICATE_TTL).contains(&ttl) {
        return Err(TtlError::OutOfRange(text.to_owned()));
    }
    Ok(ttl)
}

/// Temporary credentials from STS. `Debug` shows the access key id and expiration only.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: Timestamp,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_credentials_debug_hides_the_secrets() {
        let credentials = SessionCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
            session_token: "FwoGZXIvYXdzE".into(),
            expiration: Timestamp::UNIX_EPOCH,
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("ASIAEXAMPLE"), "{shown}");
        assert!(
            !shown.contains("wJalrXUtnFEMI") && !shown.contains("FwoGZXIvYXdzE"),
            "{shown}"
        );
    }

    #[test]
    fn certificate_ttl_is_bounded() {
        assert_eq!(parse_certificate_ttl("5m"), Ok(DEFAULT_CERTIFICATE_TTL));
        assert!(matches!(
            parse_certificate_ttl("30s"),
            Err(TtlError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_certificate_ttl("2h"),
            Err(TtlError::OutOfRange(_))
        ));
        assert!(matches!(parse_certificate_ttl("soon"), Err(TtlError::Syntax(_))));
    }
}

//! What a CredentialRequest issued, as kept beside the key (`<key>.issued.json`, secrets still
//! sealed), and whether it is still good enough to use instead of asking again.

use std::{fs, time::Duration};

use anyhow::Result;
use jiff::Timestamp;
use passport_crds::{
    AccessRequest,
    credential_request::{InstanceHostKeys, SealedSecret, TunnelParameters},
};
use serde::{Deserialize, Serialize};
use ssh_key::{Certificate, PublicKey};

use super::{cache::write_atomic, key_dir::KeyDir, known_hosts, sealing};

/// Clock skew tolerated on a certificate's start, in seconds.
const SKEW: i64 = 60;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    pub access_request_uid: String,
    pub credential_request: String,
    pub username: String,
    /// Unix seconds: the earlier of the certificate's and the status' end.
    pub valid_before: i64,
    pub certificate: String,
    /// For RSA keys, the certificate whose CA signature is `ssh-rsa` (SHA-1), for servers older than
    /// OpenSSH 7.2; ssh offers it after [`Self::certificate`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sha1: Option<String>,
    #[serde(default)]
    pub host_keys: Vec<InstanceHostKeys>,
    #[serde(default)]
    pub tunnel: Option<TunnelParameters>,
    #[serde(default)]
    pub sealed_secrets: Vec<SealedSecret>,
}

/// What the caller needs from the credentials.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    /// The certificate must stay valid at least this long.
    pub min_validity: Duration,
    /// A sealed AWS session (for Session Manager) valid that long is needed too.
    pub aws_session: bool,
}

impl Issued {
    /// The record on disk, if it is for this key and request (`uid`) and satisfies `need`.
    pub fn read_fresh(keys: &KeyDir, public: &PublicKey, uid: &str, need: Need) -> Option<Issued> {
        let text = fs::read_to_string(keys.issued()).ok()?;
        let issued: Issued = serde_json::from_str(&text).ok()?;
        let on_disk = fs::read_to_string(keys.certificate()).ok()?;
        if issued.access_request_uid != uid || on_disk.trim() != issued.certificate.trim() {
            return None;
        }
        if let Some(sha1) = &issued.certificate_sha1 {
            let on_disk = fs::read_to_string(keys.certificate_sha1()).ok()?;
            if on_disk.trim() != sha1.trim() {
                return None;
            }
        }
        let now = Timestamp::now().as_second();
        let min = i64::try_from(need.min_validity.as_secs()).unwrap_or(i64::MAX);
        let certificate = Certificate::from_openssh(issued.certificate.trim()).ok()?;
        let fresh = certificate.public_key() == public.key_data()
            && valid_between(&certificate, now, min)
            && issued.valid_before >= now.saturating_add(min);
        if !fresh {
            return None;
        }
        if need.aws_session {
            let session = sealing::aws_session(keys, issued.sealed()).ok()?;
            let expires: Timestamp = session.expiration.parse().ok()?;
            if expires.as_second() < now.saturating_add(min) {
                return None;
            }
        }
        Some(issued)
    }

    /// What this record carries sealed, for [`sealing::unseal`].
    pub fn sealed(&self) -> sealing::Sealed<'_> {
        sealing::Sealed {
            secrets: &self.sealed_secrets,
            credential_request: &self.credential_request,
        }
    }

    /// Writes the certificate(s) where ssh looks for them, known_hosts, and this record.
    pub fn save(&self, keys: &KeyDir, request: &AccessRequest) -> Result<()> {
        write_atomic(
            &keys.certificate(),
            format!("{}\n", self.certificate).as_bytes(),
            0o644,
        )?;
        match &self.certificate_sha1 {
            Some(sha1) => write_atomic(&keys.certificate_sha1(), format!("{sha1}\n").as_bytes(), 0o644)?,
            // None issued (an Ed25519 key, or an operator that issues none): no stale one stays.
            None => match fs::remove_file(keys.certificate_sha1()) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
                _ => {}
            },
        }
        known_hosts::write(keys, request, &self.host_keys)?;
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(&keys.issued(), &json, 0o600)
    }
}

/// Whether the certificate has started (give or take [`SKEW`]) and lasts `min` more seconds.
pub fn valid_between(certificate: &Certificate, now: i64, min: i64) -> bool {
    let after = i64::try_from(certificate.valid_after()).unwrap_or(i64::MAX);
    let before = i64::try_from(certificate.valid_before()).unwrap_or(i64::MAX);
    after <= now + SKEW && before >= now.saturating_add(min)
}

#[cfg(test)]
mod tests {
    use passport_crds::KeyType;

    use super::*;
    use crate::{fixtures, workstation::key_dir::generate};

    #[test]
    fn certificate_validity_window() -> Result<()> {
        let ca = generate(KeyType::Ed25519, "ca")?;
        let key = generate(KeyType::Ed25519, "me")?;
        let t = fixtures::now_seconds();
        let now = i64::try_from(t)?;
        let certify = |after, before| fixtures::certify(key.public_key(), &ca, after, before);
        assert!(valid_between(&certify(t - 5, t + 600), now, 60));
        assert!(!valid_between(&certify(t - 5, t + 30), now, 60), "ends too soon");
        assert!(!valid_between(&certify(t + 600, t + 900), now, 60), "not started");
        Ok(())
    }
}

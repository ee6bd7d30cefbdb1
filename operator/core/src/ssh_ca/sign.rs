//! Signing user certificates.

use std::time::Duration;

use jiff::Timestamp;
use rand_core::OsRng;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, HashAlg, PublicKey};

use super::error::CaError;
use passport_crds::KeyType;

use super::keys::{CaKeys, key_type_of, rsa_modulus_bits};
use super::rsa_signer::RsaCaSigner;
use super::sha1_cert::resign_sha1;
use super::source_address::canonical_cidr;

/// How far before "now" certificates start being valid, so that an instance whose clock runs a little
/// behind the operator's does not reject a certificate as not yet valid.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(120);

/// The certificate extensions granted: an interactive shell and port forwarding (the RDP tunnel to
/// Windows instances). Deliberately absent: agent and X11 forwarding, and `permit-user-rc`, which would
/// let the user run commands from `~/.ssh/rc` outside what the session logs.
pub const EXTENSIONS: [&str; 2] = ["permit-port-forwarding", "permit-pty"];

/// The smallest RSA user key certified: smaller keys are within reach of factoring, and current
/// guidance (NIST SP 800-131A) retired them long ago.
pub const MIN_USER_RSA_BITS: usize = 2048;

/// The largest RSA user key certified, OpenSSH's own limit.
pub const MAX_USER_RSA_BITS: usize = 16384;

/// A CA signature algorithm passport issues certificates with.
///
/// What servers accept depends on their age: `ssh-ed25519` since OpenSSH 6.5, `rsa-sha2-512` (and
/// `-256`) on certificates since OpenSSH 7.2; only servers older than that need the SHA-1 `ssh-rsa`
/// signature, which OpenSSH 8.2+ in turn refuses by default.
///
/// RSA signatures are made by [`RsaCaSigner`] with the `rsa` crate (ssh-key 0.6.7's own RSA signer is
/// broken with `rsa` ≥ 0.9.7 and does SHA-512 only). ssh-key 0.6 cannot represent an `ssh-rsa`
/// (SHA-1) signature (`Signature::new` rejects `Algorithm::Rsa { hash: None }`): that certificate is
/// re-signed on its wire form by [`super::sha1_cert`] and can be read back with
/// [`super::Sha1Certificate`] only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CaSignatureAlgorithm {
    /// Ed25519 CA key; for Ed25519 user keys.
    SshEd25519,
    /// RSA CA key, PKCS#1 v1.5 with SHA-512; for RSA user keys.
    RsaSha2_512,
    /// RSA CA key, PKCS#1 v1.5 with SHA-256; for RSA user keys.
    RsaSha2_256,
    /// RSA CA key, PKCS#1 v1.5 with SHA-1 (`ssh-rsa`); for RSA user keys, for servers older than
    /// OpenSSH 7.2. Issued last: clients offer it after the SHA-2 ones.
    SshRsa,
}

impl CaSignatureAlgorithm {
    /// The SSH name, as in the certificate's signature and `CASignatureAlgorithms`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SshEd25519 => "ssh-ed25519",
            Self::RsaSha2_512 => "rsa-sha2-512",
            Self::RsaSha2_256 => "rsa-sha2-256",
            Self::SshRsa => "ssh-rsa",
        }
    }

    /// The algorithms a user key of this type gets certificates for, one certificate each. An
    /// Ed25519 user key gets an Ed25519-signed certificate only: any server that knows Ed25519 user
    /// keys knows Ed25519 CAs. An RSA user key is for servers that cannot take Ed25519 (too old, or
    /// FIPS mode), so it is signed by the RSA CA: with SHA-2 first, and also with SHA-1 (`ssh-rsa`,
    /// last) for servers older than OpenSSH 7.2, which know no other RSA certificate signature.
    pub fn for_key_type(key_type: KeyType) -> &'static [Self] {
        match key_type {
            KeyType::Ed25519 => &[Self::SshEd25519],
            KeyType::Rsa => &[Self::RsaSha2_512, Self::RsaSha2_256, Self::SshRsa],
        }
    }
}

/// Starts the principal of every AccessRequest's certificates; the rest is the request's UID.
pub const PRINCIPAL_PREFIX: &str = "passport-";

/// The principal of the certificates issued for the AccessRequest with UID `uid`: `passport-<uid>`.
///
/// One per request, not per OS user: the user (one per requester) is shared by the requester's
/// requests, but an instance's principals file lists only the principals of the requests holding
/// the user there (see `sh/holders.sh`), so a certificate of request A never logs in where only
/// request B holds the user. The provisioning script derives the same string from the holder.
pub fn request_principal(uid: &str) -> String {
    format!("{PRINCIPAL_PREFIX}{uid}")
}

/// What to certify. Built by the CredentialRequest controller from the request and its AccessRequest.
#[derive(Clone, Debug)]
pub struct CertificateRequest<'a> {
    /// The user's OpenSSH public key line (`spec.publicKey`).
    pub public_key: &'a str,
    /// The certificate's one and only principal: the AccessRequest's ([`request_principal`]).
    pub principal: &'a str,
    /// `namespace/name#serial` and the AccessRequest's UID; shows up in the instance's sshd log on
    /// every login.
    pub key_id: String,
    /// The `source-address` critical option (see [`super::source_addresses`]); `None`: no
    /// restriction.
    pub source_addresses: Option<&'a [String]>,
    /// Certificate serial; lets an instance's `RevokedKeys` list revoke it.
    pub serial: u64,
    /// The signing time.
    pub now: Timestamp,
    /// How long the certificate should last (minutes).
    pub ttl: Duration,
    /// The AccessRequest's `expiresAt`: no certificate outlives it.
    pub not_after: Timestamp,
}

/// One signed certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    /// The CA signature algorithm, e.g. `ssh-ed25519` or `rsa-sha2-512` (CredentialRequest
    /// `status.certificates[].algorithm`).
    pub algorithm: String,
    /// The certificate in OpenSSH one-line form (`ssh-ed25519-cert-v01@openssh.com AAAA… key-id`), what
    /// goes into `id_…-cert.pub`.
    pub certificate: String,
    /// The end of validity written into the certificate (exclusive, whole seconds).
    pub valid_before: Timestamp,
}

/// A certificate's validity window, in whole seconds as certificates carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// First second of validity: now − [`CLOCK_SKEW_ALLOWANCE`] (not before 1970).
    pub valid_after: Timestamp,
    /// First second of invalidity: min(now + ttl, not_after), rounded down.
    pub valid_before: Timestamp,
}

impl Validity {
    /// The window for a certificate signed at `now`, lasting `ttl` but never past `not_after`.
    ///
    /// `valid_before` is rounded *down* to the second so that it cannot exceed `not_after`; a request
    /// with less than one whole second left counts as expired.
    pub fn compute(now: Timestamp, ttl: Duration, not_after: Timestamp) -> Result<Self, CaError> {
        if now < Timestamp::UNIX_EPOCH {
            return Err(CaError::TimeOutOfRange(now));
        }
        let expired = || CaError::AccessRequestExpired {
            expires_at: not_after,
            now,
        };
        if not_after <= now {
            return Err(expired());
        }
        if ttl < Duration::from_secs(1) {
            return Err(CaError::TtlTooShort);
        }
        // An overflowing now + ttl is certainly past not_after.
        let end = now.checked_add(ttl).map_or(not_after, |end| end.min(not_after));
        let now_secs = now.as_second();
        // Both are at or after the epoch, so as_second() rounds down.
        let before_secs = end.as_second();
        if before_secs <= now_secs {
            return Err(expired());
        }
        let skew = i64::try_from(CLOCK_SKEW_ALLOWANCE.as_secs()).unwrap_or(i64::MAX);
        let after_secs = now_secs.saturating_sub(skew).max(0);
        let at = |secs: i64| Timestamp::from_second(secs).map_err(|_| CaError::TimeOutOfRange(now));
        Ok(Self {
            valid_after: at(after_secs)?,
            valid_before: at(before_secs)?,
        })
    }

    fn as_unix_secs(self) -> (u64, u64) {
        // compute() guarantees both are at or after the epoch.
        let secs = |t: Timestamp| u64::try_from(t.as_second()).unwrap_or(0);
        (secs(self.valid_after), secs(self.valid_before))
    }
}

/// Parses and vets `spec.publicKey`: one OpenSSH public key line, `ssh-ed25519`, or `ssh-rsa` with
/// [`MIN_USER_RSA_BITS`] to [`MAX_USER_RSA_BITS`] bits. Exposed so that the controller can reject a bad
/// key (and check `spec.keyType`) before doing anything else.
pub fn parse_user_public_key(line: &str) -> Result<(KeyType, PublicKey), CaError> {
    let invalid = |reason: &str| CaError::InvalidPublicKey {
        reason: reason.to_owned(),
    };
    let line = line.trim();
    if line.is_empty() {
        return Err(invalid("it is empty"));
    }
    if line.contains(['\n', '\r']) {
        return Err(invalid("it has several lines; give exactly one key"));
    }
    let type_name = line.split_ascii_whitespace().next().unwrap_or_default();
    if type_name.ends_with("-cert-v01@openssh.com") {
        return Err(invalid("it is a certificate, not a public key"));
    }
    if Algorithm::new(type_name).is_ok_and(|algorithm| key_type_of(&algorithm).is_none()) {
        return Err(unsupported(type_name));
    }
    if type_name != KeyType::Ed25519.ssh_name() && type_name != KeyType::Rsa.ssh_name() {
        return Err(invalid("it does not start with a key type such as ssh-ed25519"));
    }
    let key = PublicKey::from_openssh(line).map_err(|e| CaError::InvalidPublicKey {
        reason: e.to_string(),
    })?;
    let key_type = key_type_of(&key.algorithm()).ok_or_else(|| unsupported(key.algorithm().as_str()))?;
    if let Some(rsa) = key.key_data().rsa() {
        let bits = rsa_modulus_bits(&rsa.n);
        if !(MIN_USER_RSA_BITS..=MAX_USER_RSA_BITS).contains(&bits) {
            return Err(CaError::RsaKeySize {
                bits,
                min: MIN_USER_RSA_BITS,
                max: MAX_USER_RSA_BITS,
            });
        }
    }
    Ok((key_type, key))
}

fn unsupported(algorithm: &str) -> CaError {
    CaError::UnsupportedKeyAlgorithm {
        algorithm: algorithm.to_owned(),
    }
}

/// A principal is matched literally against the login name; anything that is not a plain user name
/// (an empty string, a comma-separated list as `ssh-keygen -n` would take it) is a bug upstream.
fn check_principal(principal: &str) -> Result<(), CaError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == ',';
    if principal.is_empty() || principal.contains(bad) {
        return Err(CaError::InvalidPrincipal(principal.to_owned()));
    }
    Ok(())
}

/// The value of the `source-address` critical option: the canonical CIDRs, comma-separated. An empty
/// list would make sshd refuse every address, which is never what is meant: it is refused.
fn source_address_option(list: &[String]) -> Result<String, CaError> {
    if list.is_empty() {
        return Err(CaError::InvalidSourceAddress(String::new()));
    }
    let canonical: Result<Vec<String>, CaError> = list.iter().map(|cidr| canonical_cidr(cidr)).collect();
    Ok(canonical?.join(","))
}

impl CaKeys {
    /// Certifies `req.public_key` for `req.principal`: one certificate per
    /// [`CaSignatureAlgorithm::for_key_type`], signed by the active CA keys, each with a fresh random
    /// nonce. See the module documentation for the certificate contents.
    ///
    /// Pure CPU work (an Ed25519 signature, or an RSA-3072 one) with no I/O, safe to call from many
    /// threads at once.
    pub fn sign(&self, req: &CertificateRequest<'_>) -> Result<Vec<IssuedCert>, CaError> {
        let (key_type, subject) = parse_user_public_key(req.public_key)?;
        check_principal(req.principal)?;
        let source_address = match req.source_addresses {
            Some(list) => Some(source_address_option(list)?),
            None => None,
        };
        let validity = Validity::compute(req.now, req.ttl, req.not_after)?;
        CaSignatureAlgorithm::for_key_type(key_type)
            .iter()
            .map(|&algorithm| self.issue(algorithm, &subject, req, source_address.as_deref(), validity))
            .collect()
    }

    fn issue(
        &self,
        algorithm: CaSignatureAlgorithm,
        subject: &PublicKey,
        req: &CertificateRequest<'_>,
        source_address: Option<&str>,
        validity: Validity,
    ) -> Result<IssuedCert, CaError> {
        let failed = |source| CaError::Signing {
            algorithm: algorithm.as_str(),
            source,
        };
        let rsa_signer = |hash| {
            let keypair = self
                .rsa
                .private
                .key_data()
                .rsa()
                .ok_or(ssh_key::Error::AlgorithmUnknown)
                .map_err(failed)?;
            RsaCaSigner::new(keypair, hash).map_err(|_| failed(ssh_key::Error::Crypto))
        };
        let (valid_after, valid_before) = validity.as_unix_secs();
        let mut builder =
            Builder::new_with_random_nonce(&mut OsRng, subject.key_data().clone(), valid_after, valid_before)
                .map_err(failed)?;
        builder
            .serial(req.serial)
            .and_then(|b| b.cert_type(CertType::User))
            .and_then(|b| b.key_id(req.key_id.as_str()))
            .and_then(|b| b.valid_principal(req.principal))
            .and_then(|b| b.comment(req.key_id.as_str()))
            .map_err(failed)?;
        if let Some(list) = source_address {
            builder.critical_option("source-address", list).map_err(failed)?;
        }
        for extension in EXTENSIONS {
            builder.extension(extension, "").map_err(failed)?;
        }
        let certificate = match algorithm {
            CaSignatureAlgorithm::SshEd25519 => builder.sign(&self.ed25519.private),
            CaSignatureAlgorithm::RsaSha2_512 => builder.sign(&rsa_signer(HashAlg::Sha512)?),
            CaSignatureAlgorithm::RsaSha2_256 | CaSignatureAlgorithm::SshRsa => {
                builder.sign(&rsa_signer(HashAlg::Sha256)?)
            }
        }
        .map_err(failed)?;
        if algorithm == CaSignatureAlgorithm::SshRsa {
            // Signed with SHA-256 above (ssh-key cannot hold SHA-1), then re-signed with SHA-1 over
            // the same bytes.
            let line = resign_sha1(&certificate, rsa_signer(HashAlg::Sha256)?.private_key())?;
            return Ok(IssuedCert {
                algorithm: algorithm.as_str().to_owned(),
                certificate: line,
                valid_before: validity.valid_before,
            });
        }
        // The label must describe the signature actually made, not the one intended: should a future
        // ssh-key pick another hash for RSA, the CredentialRequest status would otherwise mislabel it.
        let produced = certificate.signature().algorithm();
        if produced.as_str() != algorithm.as_str() {
            return Err(CaError::UnexpectedSignatureAlgorithm {
                expected: algorithm.as_str(),
                produced: produced.as_str().to_owned(),
            });
        }
        Ok(IssuedCert {
            algorithm: algorithm.as_str().to_owned(),
            certificate: certificate.to_openssh().map_err(failed)?,
            valid_before: validity.valid_before,
        })
    }
}

#[cfg(test)]
mod tests;

//! Errors of the SSH certificate authority.
//!
//! Messages about the user's key name the field (`spec.publicKey`) and say how to fix it, because they
//! end up verbatim in the CredentialRequest's conditions, in front of the person running the CLI.
//! Messages about the CA's own keys name the Secret entry, because only an operator admin can fix them.

use jiff::Timestamp;

/// Why the CA could not load its keys or sign a certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// `spec.publicKey` is not a single OpenSSH public key line.
    #[error(
        "spec.publicKey is not an OpenSSH public key line ({reason}); paste the whole contents of the \
         .pub file, e.g. `ssh-ed25519 AAAAC3Nza… you@laptop`"
    )]
    InvalidPublicKey {
        /// What the parser objected to.
        reason: String,
    },

    /// `spec.publicKey` parses but is neither `ssh-ed25519` nor `ssh-rsa`.
    #[error(
        "spec.publicKey is of type {algorithm}; passport certifies only ssh-ed25519 and ssh-rsa keys: \
         create one with `ssh-keygen -t ed25519`"
    )]
    UnsupportedKeyAlgorithm {
        /// The algorithm the key declares, e.g. `ecdsa-sha2-nistp256`.
        algorithm: String,
    },

    /// `spec.publicKey` is an RSA key of a size OpenSSH servers refuse.
    #[error(
        "spec.publicKey is a {bits}-bit RSA key; RSA keys must have {min} to {max} bits: create one \
         with `ssh-keygen -t ed25519` (preferred) or `ssh-keygen -t rsa -b 3072`"
    )]
    RsaKeySize {
        /// Modulus size of the key given.
        bits: usize,
        /// Smallest accepted modulus.
        min: usize,
        /// Largest accepted modulus.
        max: usize,
    },

    /// The AccessRequest's `expiresAt` is not (meaningfully) in the future.
    #[error(
        "the access request expired at {expires_at} (it is now {now}); no certificate can be issued \
         for it: request access again"
    )]
    AccessRequestExpired {
        /// The AccessRequest's `expiresAt`.
        expires_at: Timestamp,
        /// The signing time.
        now: Timestamp,
    },

    /// The requested certificate lifetime is shorter than the one-second resolution of certificates.
    #[error("certificate TTL must be at least one second")]
    TtlTooShort,

    /// A timestamp the certificate needs is before the Unix epoch (a broken clock).
    #[error("time {0} is before 1970 and cannot appear in an SSH certificate; check the clock")]
    TimeOutOfRange(Timestamp),

    /// The principal is empty or would be read as several principals or an option.
    #[error(
        "invalid certificate principal {0:?}: it must be one non-empty user name without whitespace, \
         commas or control characters"
    )]
    InvalidPrincipal(String),

    /// An entry of `spec.sourceCidrs` is not an IP address or CIDR (sshd would refuse the
    /// certificate outright).
    #[error("invalid source address {0:?}: give CIDRs such as 203.0.113.7/32 or 2001:db8::/64")]
    InvalidSourceAddress(String),

    /// An entry the CA needs is absent from its Secret.
    #[error("CA key Secret has no {entry:?} entry; delete the Secret to have fresh CA keys generated")]
    MissingCaKey {
        /// The Secret data key.
        entry: &'static str,
    },

    /// An entry of the CA Secret is not a usable OpenSSH private key of the expected kind.
    #[error("CA key Secret entry {entry:?} is unusable: {reason}")]
    InvalidCaKey {
        /// The Secret data key.
        entry: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// Generating a CA key failed (the RNG or the RSA prime search).
    #[error("could not generate the {algorithm} CA key: {source}")]
    KeyGeneration {
        /// `ed25519` or `rsa`.
        algorithm: &'static str,
        /// The underlying error.
        source: ssh_key::Error,
    },

    /// Building, signing or encoding a certificate failed.
    #[error("could not issue the {algorithm} certificate: {source}")]
    Signing {
        /// The CA signature algorithm being produced.
        algorithm: &'static str,
        /// The underlying error.
        source: ssh_key::Error,
    },

    /// The signing library made a different signature than the one asked for.
    #[error("asked for a {expected} certificate signature, the signing library made {produced}")]
    UnexpectedSignatureAlgorithm {
        /// The algorithm asked for.
        expected: &'static str,
        /// The algorithm of the signature made.
        produced: String,
    },

    /// A certificate read back (an `ssh-rsa`-signed one, see `Sha1Certificate`) is malformed or its
    /// signature does not verify.
    #[error("the certificate is unusable: {reason}")]
    InvalidCertificate {
        /// What is wrong with it.
        reason: String,
    },

    /// Encoding a CA private key for the Secret failed.
    #[error("could not encode CA key Secret entry {entry:?}: {source}")]
    Encoding {
        /// The Secret data key.
        entry: &'static str,
        /// The underlying error.
        source: ssh_key::Error,
    },
}

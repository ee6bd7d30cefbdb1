//! passport's SSH user certificate authority.
//!
//! Instances trust the CA public keys ([`CaKeys::trusted_public_keys`]) for the short-lived `rs-…`
//! users; the operator signs the CLI's public key ([`CaKeys::sign`]) into certificates that are valid
//! for minutes and never past the AccessRequest's `expiresAt`. The private keys never leave the
//! operator: they live in a Kubernetes Secret with the username key ([`Authority::to_secret_data`] /
//! [`Authority::from_secret_data`]); this module does no I/O, the operator persists the map.
//!
//! Two CA keys are active at once: Ed25519 for everything modern, RSA for servers too old to know
//! Ed25519.
//!
//! # What the certificates look like
//!
//! * type `user`, exactly one principal: the AccessRequest's own, `passport-<UID>`
//!   ([`request_principal`]), which the instance lists for the OS user only while that request
//!   holds it; key id `namespace/name#serial` and the AccessRequest's UID;
//! * `valid_after` = now − [`CLOCK_SKEW_ALLOWANCE`], `valid_before` = min(now + ttl, `expiresAt`),
//!   rounded down to the second so it can never pass `expiresAt`;
//! * critical option `source-address` when the AccessRequest has `spec.sourceCidrs` (those, plus
//!   the instance's loopback for Session Manager tunnels: see [`source_address::LOOPBACK`]), none
//!   otherwise; extensions `permit-pty` and `permit-port-forwarding` only (no agent or X11
//!   forwarding, no `~/.ssh/rc`).
//!
//! One certificate per CA signature algorithm the crate can produce for the user's key type — see
//! [`CaSignatureAlgorithm`] for what is (and is not) produced.

mod error;
mod keys;
mod rsa_signer;
mod secret;
mod sha1_cert;
mod sign;
pub mod source_address;

pub use error::CaError;
pub use keys::{
    CA_KEY_COMMENT, CaKeys, RSA_CA_KEY_BITS, SECRET_KEY_ED25519, SECRET_KEY_RSA, generate_rsa, key_type_of,
};
pub use secret::{Authority, SECRET_KEY_USERNAME};
pub use sha1_cert::{RSA_CERT_TYPE, SSH_RSA, Sha1Certificate};
pub use sign::{
    CLOCK_SKEW_ALLOWANCE, CaSignatureAlgorithm, CertificateRequest, EXTENSIONS, IssuedCert,
    MAX_USER_RSA_BITS, MIN_USER_RSA_BITS, PRINCIPAL_PREFIX, Validity, parse_user_public_key,
    request_principal,
};
pub use source_address::source_addresses;

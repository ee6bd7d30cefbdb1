//! The CA's key material: an active Ed25519 and RSA pair, and room for the pair it replaced.

use std::fmt;

use rand_core::OsRng;
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, Fingerprint, HashAlg, Mpint, PrivateKey, PublicKey};

use super::error::CaError;
use super::store::{
    SECRET_KEY_ED25519, SECRET_KEY_PREVIOUS_ED25519, SECRET_KEY_PREVIOUS_RSA, SECRET_KEY_RSA,
};

/// Comment on every CA key, so that an admin reading an instance's `TrustedUserCAKeys` file (or the
/// Secret) can tell where the line came from.
pub const CA_KEY_COMMENT: &str = "passport-ca";

/// Size of generated RSA CA keys: the RSA key exists only for servers too old for Ed25519, and 3072
/// bits is what current `ssh-keygen` defaults to; 4096 would make every signature ~2.4× slower (RSA
/// private-key operations are cubic in the key size).
pub const RSA_CA_KEY_BITS: usize = 3072;

/// The smallest RSA CA key accepted from a Secret: smaller keys are within reach of factoring, and
/// ssh-key itself refuses to sign or verify with them.
const MIN_CA_RSA_BITS: usize = 2048;

/// The two key types passport deals in, for the CA and for users alike.
///
/// [`SshKeyType::as_str`] spells them like the CredentialRequest's `spec.keyType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SshKeyType {
    /// `ssh-ed25519`.
    Ed25519,
    /// `ssh-rsa` (the key type; signatures may use SHA-2).
    Rsa,
}

impl SshKeyType {
    /// `ed25519` or `rsa`, as in `spec.keyType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
        }
    }

    /// The OpenSSH key type name, as at the start of a public key line.
    pub fn ssh_name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ssh-ed25519",
            Self::Rsa => "ssh-rsa",
        }
    }

    /// The type of an ssh-key algorithm, if it is one passport deals in.
    pub(super) fn of(algorithm: &Algorithm) -> Option<Self> {
        match algorithm {
            Algorithm::Ed25519 => Some(Self::Ed25519),
            Algorithm::Rsa { .. } => Some(Self::Rsa),
            _ => None,
        }
    }
}

/// Where a CA key lives: which Secret entry, and what type it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Ed25519,
    Rsa,
    PreviousEd25519,
    PreviousRsa,
}

impl Slot {
    /// The Secret data key holding this slot's private key.
    pub(super) fn entry(self) -> &'static str {
        match self {
            Self::Ed25519 => SECRET_KEY_ED25519,
            Self::Rsa => SECRET_KEY_RSA,
            Self::PreviousEd25519 => SECRET_KEY_PREVIOUS_ED25519,
            Self::PreviousRsa => SECRET_KEY_PREVIOUS_RSA,
        }
    }

    fn key_type(self) -> SshKeyType {
        match self {
            Self::Ed25519 | Self::PreviousEd25519 => SshKeyType::Ed25519,
            Self::Rsa | Self::PreviousRsa => SshKeyType::Rsa,
        }
    }
}

/// One CA private key, checked once, with what every caller needs precomputed so that listing the
/// trusted keys cannot fail and debugging output never needs the private half.
#[derive(Clone)]
pub(super) struct CaKey {
    pub(super) private: PrivateKey,
    public_line: String,
    fingerprint: Fingerprint,
}

impl CaKey {
    /// Checks that `private` can serve in `slot` (right type, unencrypted, RSA big enough) and
    /// normalizes its comment to [`CA_KEY_COMMENT`].
    pub(super) fn new(mut private: PrivateKey, slot: Slot) -> Result<Self, CaError> {
        let invalid = |reason: String| CaError::InvalidCaKey {
            entry: slot.entry(),
            reason,
        };
        if private.is_encrypted() {
            return Err(invalid(
                "it is encrypted; passport needs the CA key without a passphrase".into(),
            ));
        }
        let expected = slot.key_type();
        let algorithm = private.algorithm();
        if SshKeyType::of(&algorithm) != Some(expected) {
            return Err(invalid(format!(
                "it holds a key of type {} where {} belongs",
                algorithm.as_str(),
                expected.ssh_name()
            )));
        }
        if let Some(rsa) = private.public_key().key_data().rsa() {
            let bits = rsa_modulus_bits(&rsa.n);
            if bits < MIN_CA_RSA_BITS {
                return Err(invalid(format!(
                    "its RSA key has {bits} bits, fewer than {MIN_CA_RSA_BITS}"
                )));
            }
        }
        private.set_comment(CA_KEY_COMMENT);
        let public_line = private
            .public_key()
            .to_openssh()
            .map_err(|e| invalid(e.to_string()))?;
        let fingerprint = private.public_key().fingerprint(HashAlg::Sha256);
        Ok(Self {
            private,
            public_line,
            fingerprint,
        })
    }

    pub(super) fn public_key(&self) -> &PublicKey {
        self.private.public_key()
    }

    pub(super) fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
}

/// Only the algorithm and fingerprint: this type holds a private key and ends up in logs.
impl fmt::Debug for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.private.algorithm().as_str(), self.fingerprint)
    }
}

/// The CA's key material.
///
/// The active pair signs. The previous pair, present between a [`CaKeys::rotate`] and the matching
/// [`CaKeys::retire_previous`], no longer signs but is still listed in
/// [`CaKeys::trusted_public_keys`], so certificates issued just before a rotation keep working for
/// their remaining minutes wherever the new trust list has already been installed. Retire it once the
/// longest certificate TTL has passed and every instance has received the new list.
#[derive(Clone)]
pub struct CaKeys {
    pub(super) ed25519: CaKey,
    pub(super) rsa: CaKey,
    pub(super) previous_ed25519: Option<CaKey>,
    pub(super) previous_rsa: Option<CaKey>,
}

impl CaKeys {
    /// Fresh CA keys: Ed25519 and a [`RSA_CA_KEY_BITS`]-bit RSA key, from the OS RNG.
    ///
    /// RSA prime generation takes around a second in release builds and much longer in debug builds;
    /// call this once when the CA Secret does not exist yet, not per request.
    pub fn generate() -> Result<Self, CaError> {
        let (ed25519, rsa) = generate_pair()?;
        Self::from_keys(ed25519, rsa)
    }

    /// CA keys from existing private keys (no previous pair), e.g. keys made by `ssh-keygen` or fixed
    /// keys in tests and benchmarks. Rejects keys of the wrong type, encrypted keys and RSA keys
    /// under 2048 bits.
    pub fn from_keys(ed25519: PrivateKey, rsa: PrivateKey) -> Result<Self, CaError> {
        Ok(Self {
            ed25519: CaKey::new(ed25519, Slot::Ed25519)?,
            rsa: CaKey::new(rsa, Slot::Rsa)?,
            previous_ed25519: None,
            previous_rsa: None,
        })
    }

    /// Starts a rotation with freshly generated keys: see [`CaKeys::rotate_to`].
    pub fn rotate(&mut self) -> Result<(), CaError> {
        let (ed25519, rsa) = generate_pair()?;
        self.rotate_to(ed25519, rsa)
    }

    /// Makes the given keys active and keeps the current active pair as the previous pair, still
    /// trusted but no longer signing. An existing previous pair is dropped (there is room for one), so
    /// rotate again only once every instance trusts the current keys. On error nothing changes.
    pub fn rotate_to(&mut self, ed25519: PrivateKey, rsa: PrivateKey) -> Result<(), CaError> {
        let ed25519 = CaKey::new(ed25519, Slot::Ed25519)?;
        let rsa = CaKey::new(rsa, Slot::Rsa)?;
        let old_ed25519 = std::mem::replace(&mut self.ed25519, ed25519);
        let old_rsa = std::mem::replace(&mut self.rsa, rsa);
        self.previous_ed25519 = Some(old_ed25519);
        self.previous_rsa = Some(old_rsa);
        Ok(())
    }

    /// Ends a rotation: stops trusting the previous pair. Returns whether there was one.
    pub fn retire_previous(&mut self) -> bool {
        let had = self.has_previous();
        self.previous_ed25519 = None;
        self.previous_rsa = None;
        had
    }

    /// Whether a previous pair is still trusted (a rotation is in progress).
    pub fn has_previous(&self) -> bool {
        self.previous_ed25519.is_some() || self.previous_rsa.is_some()
    }

    /// OpenSSH public key lines (`ssh-ed25519 AAAA… passport-ca`) of every key instances must trust:
    /// the active Ed25519 and RSA keys, then the previous ones if a rotation is in progress. This is
    /// the content of an instance's `TrustedUserCAKeys` file, one line each.
    pub fn trusted_public_keys(&self) -> Vec<String> {
        self.trusted().map(|key| key.public_line.clone()).collect()
    }

    /// SHA-256 fingerprints of the keys in [`CaKeys::trusted_public_keys`], in the same order; what
    /// `ssh_key::Certificate::validate` wants as trusted CAs.
    pub fn trusted_fingerprints(&self) -> Vec<Fingerprint> {
        self.trusted().map(|key| *key.fingerprint()).collect()
    }

    /// The active keys' public halves, Ed25519 first.
    pub fn active_public_keys(&self) -> [&PublicKey; 2] {
        [self.ed25519.public_key(), self.rsa.public_key()]
    }

    fn trusted(&self) -> impl Iterator<Item = &CaKey> {
        [&self.ed25519, &self.rsa]
            .into_iter()
            .chain(self.previous_ed25519.as_ref())
            .chain(self.previous_rsa.as_ref())
    }
}

/// Fingerprints only; the private keys must never reach a log line.
impl fmt::Debug for CaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaKeys")
            .field("ed25519", &self.ed25519)
            .field("rsa", &self.rsa)
            .field("previous_ed25519", &self.previous_ed25519)
            .field("previous_rsa", &self.previous_rsa)
            .finish()
    }
}

fn generate_pair() -> Result<(PrivateKey, PrivateKey), CaError> {
    let ed25519 =
        PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(|source| CaError::KeyGeneration {
            algorithm: "ed25519",
            source,
        })?;
    let rsa = generate_rsa(RSA_CA_KEY_BITS)?;
    Ok((ed25519, rsa))
}

/// An RSA private key of the given size. `PrivateKey::random` always makes 4096-bit RSA keys, hence
/// the detour through `RsaKeypair`.
pub(super) fn generate_rsa(bits: usize) -> Result<PrivateKey, CaError> {
    let keypair = RsaKeypair::random(&mut OsRng, bits).map_err(|source| CaError::KeyGeneration {
        algorithm: "rsa",
        source,
    })?;
    PrivateKey::new(KeypairData::Rsa(keypair), CA_KEY_COMMENT).map_err(|source| CaError::KeyGeneration {
        algorithm: "rsa",
        source,
    })
}

/// Size in bits of an RSA modulus, ignoring any leading zero bytes of its encoding.
pub(super) fn rsa_modulus_bits(n: &Mpint) -> usize {
    let bytes = n.as_bytes();
    let significant = match bytes.iter().position(|&b| b != 0) {
        Some(start) => &bytes[start..],
        None => return 0,
    };
    let top_bits = 8 - significant[0].leading_zeros() as usize;
    (significant.len() - 1) * 8 + top_bits
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{CA, NEXT_ED25519, NEXT_RSA};
    use super::*;

    #[test]
    fn generated_keys_have_expected_types_and_sizes() {
        let [ed25519, rsa] = CA.active_public_keys();
        assert_eq!(ed25519.algorithm(), Algorithm::Ed25519);
        let rsa = rsa.key_data().rsa().expect("rsa key");
        assert_eq!(rsa_modulus_bits(&rsa.n), RSA_CA_KEY_BITS);
        assert!(!CA.has_previous());
    }

    #[test]
    fn trusted_public_keys_are_openssh_lines_with_comment() {
        let lines = CA.trusted_public_keys();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ssh-ed25519 AAAA"), "{}", lines[0]);
        assert!(lines[1].starts_with("ssh-rsa AAAA"), "{}", lines[1]);
        for (line, fingerprint) in lines.iter().zip(CA.trusted_fingerprints()) {
            assert!(line.ends_with(" passport-ca"), "{line}");
            let parsed = PublicKey::from_openssh(line).expect("parses back");
            assert_eq!(parsed.fingerprint(HashAlg::Sha256), fingerprint);
        }
    }

    #[test]
    fn rotation_keeps_previous_keys_trusted_until_retired() {
        let mut keys = CA.clone();
        let before = keys.trusted_public_keys();
        keys.rotate_to(NEXT_ED25519.clone(), NEXT_RSA.clone())
            .expect("rotate");

        let during = keys.trusted_public_keys();
        assert_eq!(during.len(), 4);
        assert_eq!(
            &during[2..],
            &before[..],
            "old active keys are now the previous keys"
        );
        assert_ne!(during[0], before[0]);
        assert_ne!(during[1], before[1]);
        assert!(keys.has_previous());

        assert!(keys.retire_previous());
        assert_eq!(keys.trusted_public_keys(), &during[..2]);
        assert!(!keys.retire_previous());
    }

    #[test]
    fn failed_rotation_changes_nothing() {
        let mut keys = CA.clone();
        let before = keys.trusted_public_keys();
        let err = keys
            .rotate_to(NEXT_RSA.clone(), NEXT_RSA.clone())
            .expect_err("rsa key as ed25519");
        assert!(err.to_string().contains("\"ed25519\""), "{err}");
        assert_eq!(keys.trusted_public_keys(), before);
    }

    #[test]
    fn from_keys_rejects_swapped_keys() {
        let err = CaKeys::from_keys(NEXT_ED25519.clone(), NEXT_ED25519.clone()).expect_err("swapped");
        assert_eq!(
            err.to_string(),
            "CA key Secret entry \"rsa\" is unusable: it holds a key of type ssh-ed25519 where ssh-rsa belongs"
        );
    }

    #[test]
    fn debug_shows_fingerprints_not_private_keys() {
        let debug = format!("{:?}", *CA);
        let fingerprints = CA.trusted_fingerprints();
        assert!(debug.contains(&fingerprints[0].to_string()), "{debug}");
        assert!(debug.contains(&fingerprints[1].to_string()), "{debug}");
        let pem = CA
            .ed25519
            .private
            .to_openssh(ssh_key::LineEnding::LF)
            .expect("pem");
        let body: String = pem.lines().nth(1).expect("pem body").chars().take(20).collect();
        assert!(!debug.contains(&body), "{debug}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
    }

    #[test]
    fn modulus_bits_ignore_leading_zeros_and_count_top_byte() {
        let n = Mpint::from_positive_bytes(&[0x80, 0, 0]).expect("mpint");
        assert_eq!(rsa_modulus_bits(&n), 24);
        let n = Mpint::from_positive_bytes(&[0x01, 0, 0]).expect("mpint");
        assert_eq!(rsa_modulus_bits(&n), 17);
        let n = Mpint::from_positive_bytes(&[]).expect("mpint");
        assert_eq!(rsa_modulus_bits(&n), 0);
    }
}

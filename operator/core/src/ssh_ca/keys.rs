//! The CA's key material: an Ed25519 key for everything modern and an RSA key for servers too old
//! for Ed25519.

use std::fmt;

use passport_crds::KeyType;
use rand_core::OsRng;
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, Fingerprint, HashAlg, Mpint, PrivateKey, PublicKey};

use super::error::CaError;

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

/// Secret entry of the Ed25519 CA key.
pub const SECRET_KEY_ED25519: &str = "ed25519";
/// Secret entry of the RSA CA key.
pub const SECRET_KEY_RSA: &str = "rsa";

/// The key type of an ssh-key algorithm, if passport deals in it.
pub fn key_type_of(algorithm: &Algorithm) -> Option<KeyType> {
    match algorithm {
        Algorithm::Ed25519 => Some(KeyType::Ed25519),
        Algorithm::Rsa { .. } => Some(KeyType::Rsa),
        _ => None,
    }
}

/// The Secret entry a CA key of this type lives in.
pub(super) fn secret_entry(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::Ed25519 => SECRET_KEY_ED25519,
        KeyType::Rsa => SECRET_KEY_RSA,
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
    /// Checks that `private` can serve as the CA key of `key_type` (right type, unencrypted, RSA big
    /// enough) and normalizes its comment to [`CA_KEY_COMMENT`].
    pub(super) fn new(mut private: PrivateKey, key_type: KeyType) -> Result<Self, CaError> {
        let invalid = |reason: String| CaError::InvalidCaKey {
            entry: secret_entry(key_type),
            reason,
        };
        if private.is_encrypted() {
            return Err(invalid(
                "it is encrypted; passport needs the CA key without a passphrase".into(),
            ));
        }
        let algorithm = private.algorithm();
        if key_type_of(&algorithm) != Some(key_type) {
            return Err(invalid(format!(
                "it holds a key of type {} where {} belongs",
                algorithm.as_str(),
                key_type.ssh_name()
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
}

/// Only the algorithm and fingerprint: this type holds a private key and ends up in logs.
impl fmt::Debug for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.private.algorithm().as_str(), self.fingerprint)
    }
}

/// The CA's key pair of pairs: Ed25519 and RSA.
#[derive(Clone)]
pub struct CaKeys {
    pub(super) ed25519: CaKey,
    pub(super) rsa: CaKey,
}

impl CaKeys {
    /// Fresh CA keys: Ed25519 and a [`RSA_CA_KEY_BITS`]-bit RSA key, from the OS RNG.
    ///
    /// RSA prime generation takes around a second in release builds and much longer in debug builds;
    /// call this once when the CA Secret does not exist yet, not per request.
    pub fn generate() -> Result<Self, CaError> {
        let ed25519 =
            PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(|source| CaError::KeyGeneration {
                algorithm: "ed25519",
                source,
            })?;
        Self::from_keys(ed25519, generate_rsa(RSA_CA_KEY_BITS)?)
    }

    /// CA keys from existing private keys, e.g. keys made by `ssh-keygen` or fixed keys in tests and
    /// benchmarks. Rejects keys of the wrong type, encrypted keys and RSA keys under 2048 bits.
    pub fn from_keys(ed25519: PrivateKey, rsa: PrivateKey) -> Result<Self, CaError> {
        Ok(Self {
            ed25519: CaKey::new(ed25519, KeyType::Ed25519)?,
            rsa: CaKey::new(rsa, KeyType::Rsa)?,
        })
    }

    /// OpenSSH public key lines (`ssh-ed25519 AAAA… passport-ca`) of the keys instances must trust:
    /// the content of an instance's `TrustedUserCAKeys` file, one line each.
    pub fn trusted_public_keys(&self) -> Vec<String> {
        [&self.ed25519, &self.rsa]
            .map(|key| key.public_line.clone())
            .to_vec()
    }

    /// SHA-256 fingerprints of the keys in [`CaKeys::trusted_public_keys`], in the same order; what
    /// `ssh_key::Certificate::validate` wants as trusted CAs.
    pub fn trusted_fingerprints(&self) -> Vec<Fingerprint> {
        vec![self.ed25519.fingerprint, self.rsa.fingerprint]
    }

    /// The public halves, Ed25519 first.
    pub fn public_keys(&self) -> [&PublicKey; 2] {
        [self.ed25519.public_key(), self.rsa.public_key()]
    }
}

/// Fingerprints only; the private keys must never reach a log line.
impl fmt::Debug for CaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaKeys")
            .field("ed25519", &self.ed25519)
            .field("rsa", &self.rsa)
            .finish()
    }
}

/// An RSA private key of the given size. `PrivateKey::random` always makes 4096-bit RSA keys, hence
/// the detour through `RsaKeypair`.
pub fn generate_rsa(bits: usize) -> Result<PrivateKey, CaError> {
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
    use super::*;
    use crate::fixtures::{CA, OTHER_ED25519};

    #[test]
    fn generated_keys_have_expected_types_and_sizes() {
        let [ed25519, rsa] = CA.public_keys();
        assert_eq!(ed25519.algorithm(), Algorithm::Ed25519);
        let rsa = rsa.key_data().rsa().expect("rsa key");
        assert_eq!(rsa_modulus_bits(&rsa.n), RSA_CA_KEY_BITS);
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
    fn from_keys_rejects_swapped_keys() {
        let err = CaKeys::from_keys(OTHER_ED25519.clone(), OTHER_ED25519.clone()).expect_err("swapped");
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

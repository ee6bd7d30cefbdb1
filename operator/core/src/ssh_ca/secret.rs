//! The authority as Kubernetes Secret data: the CA keys, one OpenSSH private key (PEM, unencrypted,
//! LF line endings) per entry, so an admin can inspect or replace a key with standard tools
//! (`kubectl get secret … -o jsonpath='{.data.ed25519}' | base64 -d | ssh-keygen -y -f /dev/stdin`),
//! and the key that masks requester names into usernames. Encryption at rest is the Secret store's
//! job; reading and writing the Secret is the operator's.

use std::collections::BTreeMap;

use passport_crds::KeyType;
use rand_core::{OsRng, RngCore};
use ssh_key::{LineEnding, PrivateKey};

use super::{
    error::CaError,
    keys::{CaKey, CaKeys, secret_entry},
};

/// The data key of the HMAC key that masks requester names into `rs-…` usernames.
pub const SECRET_KEY_USERNAME: &str = "username-key";
/// The shortest username key accepted.
const MIN_USERNAME_KEY: usize = 32;

/// Everything the CA Secret holds.
#[derive(Clone)]
pub struct Authority {
    pub ca: CaKeys,
    /// Never logged: with it, usernames could be linked back to requesters by brute force.
    pub username_key: Vec<u8>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// A fresh authority: new CA keys and a random username key.
    pub fn generate() -> Result<Self, CaError> {
        let mut username_key = vec![0u8; MIN_USERNAME_KEY];
        OsRng.fill_bytes(&mut username_key);
        Ok(Self {
            ca: CaKeys::generate()?,
            username_key,
        })
    }

    /// The Secret `data`: `ed25519`, `rsa` and `username-key`.
    ///
    /// Fallible only in principle: every key was encoded successfully once when it was accepted.
    pub fn to_secret_data(&self) -> Result<BTreeMap<String, Vec<u8>>, CaError> {
        let mut data = BTreeMap::new();
        for (key_type, key) in [(KeyType::Ed25519, &self.ca.ed25519), (KeyType::Rsa, &self.ca.rsa)] {
            let entry = secret_entry(key_type);
            let pem = key
                .private
                .to_openssh(LineEnding::LF)
                .map_err(|source| CaError::Encoding { entry, source })?;
            data.insert(entry.to_owned(), pem.as_bytes().to_vec());
        }
        data.insert(SECRET_KEY_USERNAME.to_owned(), self.username_key.clone());
        Ok(data)
    }

    /// The authority from Secret `data` written by [`Authority::to_secret_data`] (a CA key may also
    /// come from an admin: `ssh-keygen -t ed25519 -N '' -C passport-ca`). Unknown entries are ignored
    /// so that later versions can add some without breaking a rollback.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, CaError> {
        let load = |key_type: KeyType| -> Result<CaKey, CaError> {
            let entry = secret_entry(key_type);
            let pem = data.get(entry).ok_or(CaError::MissingCaKey { entry })?;
            let private = PrivateKey::from_openssh(pem).map_err(|e| CaError::InvalidCaKey {
                entry,
                reason: format!("not an OpenSSH private key ({e})"),
            })?;
            CaKey::new(private, key_type)
        };
        let ca = CaKeys {
            ed25519: load(KeyType::Ed25519)?,
            rsa: load(KeyType::Rsa)?,
        };
        let username_key = data
            .get(SECRET_KEY_USERNAME)
            .filter(|k| k.len() >= MIN_USERNAME_KEY)
            .cloned()
            .ok_or(CaError::MissingCaKey {
                entry: SECRET_KEY_USERNAME,
            })?;
        Ok(Self { ca, username_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::CA;

    fn authority() -> Authority {
        Authority {
            ca: CA.clone(),
            username_key: vec![7; 32],
        }
    }

    fn keys_of(data: &BTreeMap<String, Vec<u8>>) -> Vec<&str> {
        data.keys().map(String::as_str).collect()
    }

    #[test]
    fn secret_data_round_trips() {
        let data = authority().to_secret_data().expect("encode");
        assert_eq!(keys_of(&data), ["ed25519", "rsa", "username-key"]);
        for entry in ["ed25519", "rsa"] {
            let pem = std::str::from_utf8(&data[entry]).expect("utf-8");
            assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"), "{pem}");
            assert!(!pem.contains('\r'));
        }
        let loaded = Authority::from_secret_data(&data).expect("decode");
        assert_eq!(loaded.ca.trusted_public_keys(), CA.trusted_public_keys());
        assert_eq!(loaded.username_key, vec![7; 32]);
        assert_eq!(loaded.to_secret_data().expect("re-encode"), data);
    }

    #[test]
    fn unknown_entries_are_ignored() {
        let mut data = authority().to_secret_data().expect("encode");
        data.insert("ca.pub".into(), b"whatever".to_vec());
        let loaded = Authority::from_secret_data(&data).expect("decode");
        assert_eq!(loaded.ca.trusted_public_keys(), CA.trusted_public_keys());
    }

    #[test]
    fn missing_entries_are_reported() {
        for entry in ["rsa", "username-key"] {
            let mut data = authority().to_secret_data().expect("encode");
            data.remove(entry);
            let err = Authority::from_secret_data(&data).expect_err("missing");
            assert!(err.to_string().contains(&format!("no {entry:?} entry")), "{err}");
        }
        let mut data = authority().to_secret_data().expect("encode");
        data.insert("username-key".into(), vec![1; 8]);
        assert!(
            Authority::from_secret_data(&data).is_err(),
            "a short username key is refused"
        );
    }

    #[test]
    fn garbage_and_misplaced_keys_are_reported_with_their_entry() {
        let mut data = authority().to_secret_data().expect("encode");
        data.insert("ed25519".into(), b"-----BEGIN NONSENSE-----".to_vec());
        let err = Authority::from_secret_data(&data).expect_err("garbage");
        assert!(
            err.to_string()
                .starts_with("CA key Secret entry \"ed25519\" is unusable: not an OpenSSH"),
            "{err}"
        );
        let mut data = authority().to_secret_data().expect("encode");
        let rsa = data["rsa"].clone();
        data.insert("ed25519".into(), rsa);
        let err = Authority::from_secret_data(&data).expect_err("rsa in the ed25519 entry");
        assert!(
            err.to_string()
                .contains("holds a key of type ssh-rsa where ssh-ed25519 belongs"),
            "{err}"
        );
    }
}

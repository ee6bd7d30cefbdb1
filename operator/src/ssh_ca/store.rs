//! The CA keys as Kubernetes Secret data: one OpenSSH private key (PEM, unencrypted, LF line endings)
//! per entry, so an admin can inspect or replace a key with standard tools
//! (`kubectl get secret … -o jsonpath='{.data.ed25519}' | base64 -d | ssh-keygen -y -f /dev/stdin`).
//! Encryption at rest is the Secret store's job.

use std::collections::BTreeMap;

use ssh_key::{LineEnding, PrivateKey};

use super::error::CaError;
use super::keys::{CaKey, CaKeys, Slot};

/// Secret entry of the active Ed25519 CA key.
pub const SECRET_KEY_ED25519: &str = "ed25519";
/// Secret entry of the active RSA CA key.
pub const SECRET_KEY_RSA: &str = "rsa";
/// Secret entry of the previous Ed25519 CA key, present during a rotation.
pub const SECRET_KEY_PREVIOUS_ED25519: &str = "ed25519.previous";
/// Secret entry of the previous RSA CA key, present during a rotation.
pub const SECRET_KEY_PREVIOUS_RSA: &str = "rsa.previous";

impl CaKeys {
    /// The keys as Secret `data`: [`SECRET_KEY_ED25519`] and [`SECRET_KEY_RSA`] always,
    /// [`SECRET_KEY_PREVIOUS_ED25519`] and [`SECRET_KEY_PREVIOUS_RSA`] during a rotation.
    ///
    /// Fallible only in principle: every key was encoded successfully once when it was accepted.
    pub fn to_secret_data(&self) -> Result<BTreeMap<String, Vec<u8>>, CaError> {
        let slots = [
            (Slot::Ed25519, Some(&self.ed25519)),
            (Slot::Rsa, Some(&self.rsa)),
            (Slot::PreviousEd25519, self.previous_ed25519.as_ref()),
            (Slot::PreviousRsa, self.previous_rsa.as_ref()),
        ];
        let mut data = BTreeMap::new();
        for (slot, key) in slots {
            let Some(key) = key else { continue };
            let pem = key
                .private
                .to_openssh(LineEnding::LF)
                .map_err(|source| CaError::Encoding {
                    entry: slot.entry(),
                    source,
                })?;
            data.insert(slot.entry().to_owned(), pem.as_bytes().to_vec());
        }
        Ok(data)
    }

    /// Keys from Secret `data` written by [`CaKeys::to_secret_data`] (or by an admin with
    /// `ssh-keygen -t ed25519 -N '' -C passport-ca`). The active entries are required; the previous
    /// ones are optional, independently. Unknown entries are ignored so that later versions can add
    /// some without breaking a rollback.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, CaError> {
        let load = |slot: Slot| -> Result<Option<CaKey>, CaError> {
            let Some(pem) = data.get(slot.entry()) else {
                return Ok(None);
            };
            let private = PrivateKey::from_openssh(pem).map_err(|e| CaError::InvalidCaKey {
                entry: slot.entry(),
                reason: format!("not an OpenSSH private key ({e})"),
            })?;
            CaKey::new(private, slot).map(Some)
        };
        let required = |slot: Slot| -> Result<CaKey, CaError> {
            load(slot)?.ok_or(CaError::MissingCaKey { entry: slot.entry() })
        };
        Ok(Self {
            ed25519: required(Slot::Ed25519)?,
            rsa: required(Slot::Rsa)?,
            previous_ed25519: load(Slot::PreviousEd25519)?,
            previous_rsa: load(Slot::PreviousRsa)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{CA, NEXT_ED25519, NEXT_RSA};
    use super::*;

    fn keys_of(data: &BTreeMap<String, Vec<u8>>) -> Vec<&str> {
        data.keys().map(String::as_str).collect()
    }

    #[test]
    fn secret_data_round_trips() {
        let data = CA.to_secret_data().expect("encode");
        assert_eq!(keys_of(&data), ["ed25519", "rsa"]);
        for pem in data.values() {
            let pem = std::str::from_utf8(pem).expect("utf-8");
            assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"), "{pem}");
            assert!(!pem.contains('\r'));
        }
        let loaded = CaKeys::from_secret_data(&data).expect("decode");
        assert_eq!(loaded.trusted_public_keys(), CA.trusted_public_keys());
        assert_eq!(loaded.to_secret_data().expect("re-encode"), data);
    }

    #[test]
    fn secret_data_round_trips_during_rotation() {
        let mut keys = CA.clone();
        keys.rotate_to(NEXT_ED25519.clone(), NEXT_RSA.clone())
            .expect("rotate");
        let data = keys.to_secret_data().expect("encode");
        assert_eq!(
            keys_of(&data),
            ["ed25519", "ed25519.previous", "rsa", "rsa.previous"]
        );
        let loaded = CaKeys::from_secret_data(&data).expect("decode");
        assert_eq!(loaded.trusted_public_keys(), keys.trusted_public_keys());
        assert!(loaded.has_previous());
    }

    #[test]
    fn unknown_entries_are_ignored() {
        let mut data = CA.to_secret_data().expect("encode");
        data.insert("ca.pub".into(), b"whatever".to_vec());
        let loaded = CaKeys::from_secret_data(&data).expect("decode");
        assert_eq!(loaded.trusted_public_keys(), CA.trusted_public_keys());
    }

    #[test]
    fn missing_active_key_is_reported() {
        let mut data = CA.to_secret_data().expect("encode");
        data.remove("rsa");
        let err = CaKeys::from_secret_data(&data).expect_err("missing rsa");
        assert!(matches!(err, CaError::MissingCaKey { entry: "rsa" }), "{err:?}");
        assert!(err.to_string().contains("no \"rsa\" entry"), "{err}");
    }

    #[test]
    fn garbage_and_misplaced_keys_are_reported_with_their_entry() {
        let mut data = CA.to_secret_data().expect("encode");
        data.insert("ed25519.previous".into(), b"-----BEGIN NONSENSE-----".to_vec());
        let err = CaKeys::from_secret_data(&data).expect_err("garbage");
        assert!(
            err.to_string()
                .starts_with("CA key Secret entry \"ed25519.previous\" is unusable: not an OpenSSH"),
            "{err}"
        );

        let mut data = CA.to_secret_data().expect("encode");
        let rsa = data["rsa"].clone();
        data.insert("ed25519".into(), rsa);
        let err = CaKeys::from_secret_data(&data).expect_err("rsa in the ed25519 entry");
        assert!(
            err.to_string()
                .contains("holds a key of type ssh-rsa where ssh-ed25519 belongs"),
            "{err}"
        );
    }
}

//! The age identity secrets are sealed to: made fresh for each CredentialRequest and kept (0600) in
//! the key directory, so that only this workstation can open what the operator sends.

use std::{fs, str::FromStr};

use age::{secrecy::ExposeSecret, x25519::Identity};
use anyhow::{Context, Result, anyhow};
use passport_crds::{
    credential_request::SealedSecret,
    sealed::{AWS_SESSION, AwsSession},
};

use super::{cache::write_atomic, key_dir::KeyDir};

/// A fresh age X25519 identity, stored before anything is sealed to it.
pub fn new_identity(keys: &KeyDir) -> Result<Identity> {
    let identity = Identity::generate();
    let text = format!("{}\n", identity.to_string().expose_secret());
    write_atomic(&keys.sealing_identity(), text.as_bytes(), 0o600)?;
    Ok(identity)
}

/// The stored age identity.
fn read_identity(keys: &KeyDir) -> Result<Identity> {
    let path = keys.sealing_identity();
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Identity::from_str(text.trim()).map_err(|err| anyhow!("{} is not an age identity: {err}", path.display()))
}

/// The secrets a CredentialRequest sealed to this workstation, and which CredentialRequest it was.
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    pub secrets: &'a [SealedSecret],
    pub credential_request: &'a str,
}

/// Decrypts the sealed secret of `kind` (for `instance`, when per instance) with the stored identity.
pub fn unseal(keys: &KeyDir, sealed: Sealed<'_>, kind: &str, instance: Option<&str>) -> Result<Vec<u8>> {
    let credential_request = sealed.credential_request;
    let sealed = sealed
        .secrets
        .iter()
        .find(|s| s.kind == kind && (s.instance_id.is_none() || s.instance_id.as_deref() == instance))
        .ok_or_else(|| {
            anyhow!(
                "CredentialRequest {credential_request} carries no {kind} secret{}",
                instance.map(|i| format!(" for {i}")).unwrap_or_default()
            )
        })?;
    let identity = read_identity(keys)?;
    age::decrypt(&identity, sealed.ciphertext.as_bytes()).map_err(|err| {
        anyhow!("cannot unseal the {kind} secret of CredentialRequest {credential_request}: {err}")
    })
}

/// The sealed scoped AWS session, unsealed.
pub fn aws_session(keys: &KeyDir, sealed: Sealed<'_>) -> Result<AwsSession> {
    let plain = unseal(keys, sealed, AWS_SESSION, None)?;
    serde_json::from_slice(&plain).context("the aws-session secret is not the expected JSON")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use passport_crds::sealed::WINDOWS_PASSWORD;

    use super::*;
    use crate::fixtures;
    use crate::workstation::issued::Issued;

    #[test]
    fn sealing_identities_are_stored_and_read_back() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let keys = fixtures::key_dir(dir.path());
        let identity = new_identity(&keys)?;
        let read = read_identity(&keys)?;
        assert_eq!(identity.to_public().to_string(), read.to_public().to_string());
        assert!(identity.to_public().to_string().starts_with("age1"));
        let mode = fs::metadata(keys.sealing_identity())?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn secrets_unseal_with_the_stored_identity_only() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let keys = fixtures::key_dir(dir.path());
        let identity = new_identity(&keys)?;
        let sealed = age::encrypt_and_armor(&identity.to_public(), b"P@ssw0rd!")?;
        let mut issued = Issued {
            sealed_secrets: vec![SealedSecret {
                kind: WINDOWS_PASSWORD.into(),
                instance_id: Some(fixtures::INSTANCE.into()),
                ciphertext: sealed,
            }],
            ..fixtures::issued()
        };
        let plain = unseal(&keys, issued.sealed(), WINDOWS_PASSWORD, Some(fixtures::INSTANCE))?;
        assert_eq!(plain, b"P@ssw0rd!");
        let missing = unseal(
            &keys,
            issued.sealed(),
            WINDOWS_PASSWORD,
            Some(fixtures::OTHER_INSTANCE),
        )
        .expect_err("other");
        assert!(
            missing
                .to_string()
                .contains("no windows-password secret for i-0fedcba9876543210")
        );
        new_identity(&keys)?;
        issued.sealed_secrets[0].instance_id = None;
        let wrong = unseal(&keys, issued.sealed(), WINDOWS_PASSWORD, Some(fixtures::INSTANCE))
            .expect_err("new identity");
        assert!(wrong.to_string().contains("cannot unseal"), "{wrong}");
        Ok(())
    }
}

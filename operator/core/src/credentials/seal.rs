//! Sealing secrets to the CLI: every secret in a CredentialRequest's status is an ASCII-armored age
//! message to `spec.sealingKey`, an X25519 recipient the CLI generated for that one request. Only the
//! workstation holding the matching identity can read it; the apiserver, etcd backups and anyone with
//! `get` on the object see ciphertext. Formats: `passport_crds::sealed`.

use std::str::FromStr;

use age::x25519::Recipient;
use passport_crds::{
    credential_request::SealedSecret,
    sealed::{AWS_SESSION, AwsSession, WINDOWS_PASSWORD},
};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "spec.sealingKey is not an age X25519 recipient ({0}); give the public key the CLI generated \
         (`age1…`, as printed by `age-keygen -y`)"
    )]
    Recipient(&'static str),
    #[error("cannot encrypt to spec.sealingKey: {0}")]
    Encrypt(#[from] age::EncryptError),
}

/// Parses `spec.sealingKey`.
pub fn recipient(sealing_key: &str) -> Result<Recipient, SealError> {
    Recipient::from_str(sealing_key.trim()).map_err(SealError::Recipient)
}

/// Seals `plaintext` to `recipient`, ASCII-armored (`-----BEGIN AGE ENCRYPTED FILE-----`).
pub fn seal(recipient: &Recipient, plaintext: &[u8]) -> Result<String, SealError> {
    Ok(age::encrypt_and_armor(recipient, plaintext)?)
}

/// The `aws-session` secret: the JSON of [`AwsSession`].
pub fn aws_session(recipient: &Recipient, session: &AwsSession) -> Result<SealedSecret, SealError> {
    // Serialising a struct of strings cannot fail.
    let json = serde_json::to_vec(session).unwrap_or_default();
    Ok(SealedSecret {
        kind: AWS_SESSION.to_owned(),
        instance_id: None,
        ciphertext: seal(recipient, &json)?,
    })
}

/// A `windows-password` secret for one instance: the password itself, UTF-8.
pub fn windows_password(
    recipient: &Recipient,
    instance_id: &str,
    password: &str,
) -> Result<SealedSecret, SealError> {
    Ok(SealedSecret {
        kind: WINDOWS_PASSWORD.to_owned(),
        instance_id: Some(instance_id.to_owned()),
        ciphertext: seal(recipient, password.as_bytes())?,
    })
}

#[cfg(test)]
mod tests {
    use age::x25519::Identity;

    use super::*;

    fn unseal(identity: &Identity, secret: &SealedSecret) -> Vec<u8> {
        age::decrypt(identity, secret.ciphertext.as_bytes()).expect("decrypts with the identity")
    }

    fn session() -> AwsSession {
        AwsSession {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret-access-key".into(),
            session_token: "session-token".into(),
            expiration: "2030-01-01T00:00:00Z".into(),
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn aws_session_round_trips_and_is_armored() {
        let identity = Identity::generate();
        let to = recipient(&identity.to_public().to_string()).expect("recipient");
        let sealed = aws_session(&to, &session()).expect("seal");
        assert_eq!(sealed.kind, "aws-session");
        assert_eq!(sealed.instance_id, None);
        assert!(
            sealed
                .ciphertext
                .starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n")
        );
        assert!(
            sealed
                .ciphertext
                .trim_end()
                .ends_with("-----END AGE ENCRYPTED FILE-----")
        );
        for secret in ["secret-access-key", "session-token", "ASIAEXAMPLE"] {
            assert!(!sealed.ciphertext.contains(secret));
        }
        let back: AwsSession = serde_json::from_slice(&unseal(&identity, &sealed)).expect("JSON");
        assert_eq!(back, session());
    }

    #[test]
    fn windows_password_round_trips_per_instance() {
        let identity = Identity::generate();
        let to = recipient(&identity.to_public().to_string()).expect("recipient");
        let sealed = windows_password(&to, "i-0123456789abcdef0", "p@ss wörd!").expect("seal");
        assert_eq!(sealed.kind, "windows-password");
        assert_eq!(sealed.instance_id.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(unseal(&identity, &sealed), "p@ss wörd!".as_bytes());
    }

    #[test]
    fn another_identity_cannot_unseal() {
        let to = recipient(&Identity::generate().to_public().to_string()).expect("recipient");
        let sealed = windows_password(&to, "i-0123456789abcdef0", "secret").expect("seal");
        assert!(age::decrypt(&Identity::generate(), sealed.ciphertext.as_bytes()).is_err());
    }

    #[test]
    fn bad_sealing_keys_name_the_field() {
        // Right alphabet, wrong checksum: the schema's pattern lets it through, the parser does not.
        let err =
            recipient("age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq").expect_err("bad");
        assert!(
            err.to_string()
                .starts_with("spec.sealingKey is not an age X25519 recipient")
        );
        assert!(recipient("ssh-ed25519 AAAA").is_err());
    }
}

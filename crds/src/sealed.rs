//! What the secrets in a CredentialRequest's status carry once unsealed. Each `status.sealedSecrets`
//! entry is an ASCII-armored age message to `spec.sealingKey` (an X25519 recipient); its plaintext is
//! the JSON of one of these types, according to `kind`.

use serde::{Deserialize, Serialize};

/// `kind` of a sealed AWS session: [`AwsSession`].
pub const AWS_SESSION: &str = "aws-session";
/// `kind` of a sealed Windows password: the password itself, UTF-8, for `instanceId`.
pub const WINDOWS_PASSWORD: &str = "windows-password";

/// Scoped STS session credentials: they allow only Session Manager sessions to the request's
/// instances, until the request expires.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AwsSession {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// RFC 3339.
    pub expiration: String,
    pub region: String,
}

impl std::fmt::Debug for AwsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSession")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

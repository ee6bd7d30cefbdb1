use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Time, rule};

/// The key to certify and the key to seal secrets to.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "passport.dev",
    doc = "How the CLI obtains short-lived credentials for an Active AccessRequest without any secret crossing in clear: it sends a public key to be certified and a sealing key; every secret in the status is sealed to that key. Immutable once created.",
    version = "v1alpha1",
    kind = "CredentialRequest",
    namespaced,
    status = "CredentialRequestStatus",
    category = "passport",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Request","type":"string","jsonPath":".spec.accessRequest"}"#,
    printcolumn = r#"{"name":"Requester","type":"string","jsonPath":".spec.requester"}"#,
    printcolumn = r#"{"name":"Valid-Before","type":"string","jsonPath":".status.validBefore"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule("self == oldSelf", "spec of a CredentialRequest is immutable; create a new CredentialRequest instead"),
    rule("(self.keyType == 'ed25519') == self.publicKey.startsWith('ssh-ed25519 ')",
         "spec.keyType must match spec.publicKey: ed25519 for an ssh-ed25519 key, rsa for an ssh-rsa key"),
]))]
pub struct CredentialRequestSpec {
    /// Name of the AccessRequest, in this namespace, to obtain credentials for.
    #[schemars(length(min = 1, max = 253))]
    pub access_request: String,
    /// The Kubernetes username asking; must be the AccessRequest's requester and the user creating this.
    #[schemars(length(min = 1, max = 253))]
    pub requester: String,
    /// OpenSSH public key to certify (`ssh-ed25519 AAAA…` or `ssh-rsa AAAA…`). The private key never
    /// leaves the workstation.
    #[schemars(length(min = 16, max = 16384))]
    #[schemars(extend("x-kubernetes-validations" = [
        rule("self.matches('^(ssh-ed25519|ssh-rsa) [A-Za-z0-9+/]+={0,2}( [^\\n]*)?$')",
             "spec.publicKey must be one OpenSSH public key line: ssh-ed25519 or ssh-rsa, then base64"),
    ]))]
    pub public_key: String,
    /// ed25519 or rsa; must match publicKey.
    #[serde(default)]
    pub key_type: KeyType,
    /// An age X25519 recipient (`age1…`) the CLI generated for this request; every secret in the status
    /// is encrypted to it.
    #[schemars(length(min = 10, max = 256))]
    #[schemars(extend("x-kubernetes-validations" = [
        rule("self.matches('^age1[02-9ac-hj-np-z]+$')",
             "spec.sealingKey must be an age X25519 recipient (age1…), as printed by age-keygen -y"),
    ]))]
    pub sealing_key: String,
}

/// The type of key to certify.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    #[default]
    Ed25519,
    Rsa,
}

impl KeyType {
    /// As `spec.keyType` and `--key-type` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa => "rsa",
        }
    }

    /// The OpenSSH public key algorithm name.
    pub fn ssh_name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ssh-ed25519",
            KeyType::Rsa => "ssh-rsa",
        }
    }

    /// The key type of an OpenSSH public key algorithm name, if passport certifies it.
    pub fn from_ssh_name(name: &str) -> Option<Self> {
        match name {
            "ssh-ed25519" => Some(KeyType::Ed25519),
            "ssh-rsa" => Some(KeyType::Rsa),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The credentials issued. Secrets appear only sealed to spec.sealingKey.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRequestStatus {
    /// OpenSSH certificates for spec.publicKey, one per CA signature algorithm, in the order to offer
    /// them: ssh-ed25519 for an Ed25519 key; for an RSA key rsa-sha2-512, rsa-sha2-256, then ssh-rsa
    /// (SHA-1, for servers older than OpenSSH 7.2, which know no other RSA certificate signature;
    /// newer servers refuse it unless their CASignatureAlgorithms lists ssh-rsa). All are for the
    /// same key, principal and validity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<IssuedCertificate>,
    /// When the certificates (and sealed session credentials) stop being valid; never past the
    /// AccessRequest's expiresAt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_before: Option<Time>,
    /// The OS user to log in as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SSH host keys per instance, to pin in known_hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_keys: Vec<InstanceHostKeys>,
    /// What the CLI needs to open a Session Manager tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelParameters>,
    /// Secrets (Windows passwords, scoped STS session credentials) encrypted to spec.sealingKey.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sealed_secrets: Vec<SealedSecret>,
    /// Standard conditions; Issued is True once credentials are in this status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One OpenSSH certificate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCertificate {
    /// Signature algorithm, e.g. ssh-ed25519, rsa-sha2-512, rsa-sha2-256, ssh-rsa.
    pub algorithm: String,
    /// The certificate in OpenSSH one-line form.
    pub certificate: String,
}

/// Host keys of one instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceHostKeys {
    pub instance_id: String,
    pub host_keys: Vec<String>,
}

/// Session Manager parameters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelParameters {
    /// AWS region of the instances.
    pub region: String,
    /// SSM document for SSH sessions.
    pub ssh_document: String,
    /// SSM document for port forwarding (RDP).
    pub port_forwarding_document: String,
}

/// A secret encrypted to spec.sealingKey (age, ASCII-armored).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    /// What the secret is: `windows-password` or `aws-session`.
    pub kind: String,
    /// The instance it belongs to, for per-instance secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The age-encrypted secret, ASCII-armored.
    pub ciphertext: String,
}

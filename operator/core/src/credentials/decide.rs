//! Whether to issue, and what: a CredentialRequest and the AccessRequest it names in, a [`Plan`] or a
//! [`Refusal`] out. Every refusal names the field at fault and what to do about it, because its
//! message is what the person running the CLI reads.

use std::time::Duration;

use age::x25519::Recipient;
use jiff::{SignedDuration, Timestamp};
use passport_crds::{
    AccessRequest, CredentialRequestSpec, KeyType,
    access_request::{Platform, TargetState},
    credential_request::{InstanceHostKeys, TunnelParameters},
};

use super::{policy, seal};
use crate::{
    account::Account,
    ssh_ca::{CertificateRequest, parse_user_public_key, request_principal, source_addresses},
};

/// Why a CredentialRequest is refused: the `Issued=False` condition's reason, and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumIter)]
pub enum Reason {
    RequestNotFound,
    RequesterMismatch,
    RequestNotActive,
    Expired,
    InvalidPublicKey,
    KeyTypeMismatch,
    InvalidSealingKey,
    AccountUnavailable,
    TooManyTargets,
    /// The AccessRequest's `spec.sourceCidrs` cannot go into a certificate's `source-address`.
    InvalidSourceCidrs,
    /// AWS would not issue the session for [`AWS_RETRY_FOR`].
    AwsUnavailable,
}

/// How long an undecided CredentialRequest keeps retrying AWS before it is refused: the CLI waits
/// about this long, and a failing AssumeRole usually needs an administrator anyway.
pub const AWS_RETRY_FOR: Duration = Duration::from_secs(120);

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A terminal refusal: becomes `Issued=False` with this reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

fn refuse(reason: Reason, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
    }
}

/// What the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub spec: &'a CredentialRequestSpec,
    /// The AccessRequest `spec.accessRequest` names, in the same namespace, read fresh.
    pub access_request: Option<&'a AccessRequest>,
    /// The AccessRequest's AwsAccount, or why it cannot be used.
    pub account: Result<&'a Account, &'a str>,
    /// The certificate serial (random, from the caller).
    pub serial: u64,
    pub now: Timestamp,
}

/// Everything needed to issue: the certificate's contents, the AWS session to ask for, the secrets to
/// seal and to whom.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The OS user the certificate logs in as.
    pub username: String,
    /// The certificate's only principal: the AccessRequest's own (`passport-<UID>`), which an
    /// instance accepts for the user only while that AccessRequest holds it there.
    pub principal: String,
    /// `namespace/name#serial uid=<AccessRequest UID>`: sshd logs it on every login, and an auditor
    /// joins it to the AccessRequest.
    pub key_id: String,
    /// The certificate's `source-address`: `spec.sourceCidrs` and the instance's loopback; `None`
    /// without `spec.sourceCidrs`.
    pub source_addresses: Option<Vec<String>>,
    pub serial: u64,
    /// The AccessRequest's `expiresAt`: nothing issued outlives it.
    pub expires_at: Timestamp,
    pub key_type: KeyType,
    /// Ready instances of the AccessRequest: what the AWS session may open sessions to.
    pub instance_ids: Vec<String>,
    pub host_keys: Vec<InstanceHostKeys>,
    /// Ready Windows instances, each getting a sealed password.
    pub windows_instances: Vec<String>,
    pub tunnel: TunnelParameters,
    pub recipient: Recipient,
    pub account: Account,
    pub session: SessionPlan,
}

/// The AssumeRole call for the scoped AWS session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    pub name: String,
    pub policy: String,
    pub duration: Duration,
}

impl Plan {
    /// The request to the CA for this plan's certificates.
    pub fn certificate_request<'a>(
        &'a self,
        public_key: &'a str,
        now: Timestamp,
        ttl: Duration,
    ) -> CertificateRequest<'a> {
        CertificateRequest {
            public_key,
            principal: &self.principal,
            key_id: self.key_id.clone(),
            source_addresses: self.source_addresses.as_deref(),
            serial: self.serial,
            now,
            ttl,
            not_after: self.expires_at,
        }
    }
}

/// Decides: a plan when the named AccessRequest is Active and not expired, the CredentialRequest's
/// requester is its requester, and both keys are well formed; otherwise the first problem found.
pub fn plan(input: &Inputs<'_>) -> Result<Plan, Refusal> {
    let (namespace, spec) = (input.namespace, input.spec);
    let ar = spec.access_request.as_str();
    let Some(request) = input.access_request else {
        return Err(refuse(
            Reason::RequestNotFound,
            format!(
                "spec.accessRequest {ar} does not exist in namespace {namespace}: name one of your \
                 AccessRequests there (`kubectl get ar -n {namespace}`)"
            ),
        ));
    };
    if request.spec.requester != spec.requester {
        return Err(refuse(
            Reason::RequesterMismatch,
            format!(
                "spec.requester {} is not the requester of AccessRequest {ar}: credentials go to its \
                 requester only; create an AccessRequest of your own",
                spec.requester
            ),
        ));
    }
    let status = request.status.clone().unwrap_or_default();
    if let Some(unusable) = request.unusable() {
        return Err(refuse(Reason::RequestNotActive, unusable.to_string()));
    }
    let (Some(username), Some(expires_at)) = (status.username.clone(), status.expires_at.map(|t| t.0)) else {
        return Err(refuse(
            Reason::RequestNotActive,
            format!(
                "AccessRequest {ar} is Active but has no status.username or status.expiresAt yet: \
                 create a new CredentialRequest in a moment"
            ),
        ));
    };
    // A certificate counts whole seconds: less than one left is nothing left.
    if expires_at <= input.now + SignedDuration::from_secs(1) {
        return Err(refuse(
            Reason::Expired,
            format!(
                "AccessRequest {ar} expired at {expires_at} (it is now {}): create a new AccessRequest",
                input.now
            ),
        ));
    }
    let Some(uid) = request.metadata.uid.clone() else {
        return Err(refuse(
            Reason::RequestNotFound,
            format!("AccessRequest {ar} has no metadata.uid: it was not read from the API server"),
        ));
    };
    let key_type = check_public_key(spec)?;
    let recipient = seal::recipient(&spec.sealing_key)
        .map_err(|err| refuse(Reason::InvalidSealingKey, err.to_string()))?;
    let account = input.account.map_err(|problem| {
        refuse(
            Reason::AccountUnavailable,
            format!("the AwsAccount of AccessRequest {ar} cannot be used: {problem}"),
        )
    })?;

    let ready: Vec<_> = status
        .targets
        .iter()
        .filter(|t| t.state == TargetState::Ready)
        .filter(|t| {
            request
                .spec
                .targets
                .iter()
                .any(|s| s.instance_id == t.instance_id)
        })
        .collect();
    if ready.is_empty() {
        return Err(refuse(
            Reason::RequestNotActive,
            format!("AccessRequest {ar} has no Ready target: create a new AccessRequest"),
        ));
    }
    let instance_ids: Vec<String> = ready.iter().map(|t| t.instance_id.clone()).collect();
    let session_name = policy::role_session_name(&username, input.serial);
    let source_cidrs = request.spec.source_cidrs.clone().unwrap_or_default();
    let source_addresses = source_addresses(&source_cidrs).map_err(|err| {
        refuse(
            Reason::InvalidSourceCidrs,
            format!("spec.sourceCidrs of AccessRequest {ar}: {err}; create a new AccessRequest"),
        )
    })?;
    let session_policy = policy::session_policy(&policy::Scope {
        role_arn: &account.role_arn,
        region: &account.region,
        session_name: &session_name,
        instance_ids: &instance_ids,
        source_cidrs: &source_cidrs,
        expires_at,
    })
    .map_err(|err| match err {
        policy::PolicyError::RoleArn(_) => refuse(Reason::AccountUnavailable, err.to_string()),
        policy::PolicyError::TooLarge { .. } => refuse(Reason::TooManyTargets, err.to_string()),
    })?;

    Ok(Plan {
        username,
        principal: request_principal(&uid),
        key_id: format!("{namespace}/{}#{} uid={uid}", input.name, input.serial),
        source_addresses,
        serial: input.serial,
        expires_at,
        key_type,
        host_keys: ready
            .iter()
            .map(|t| InstanceHostKeys {
                instance_id: t.instance_id.clone(),
                host_keys: t.host_keys.clone(),
            })
            .collect(),
        windows_instances: ready
            .iter()
            .filter(|t| t.platform == Some(Platform::Windows))
            .map(|t| t.instance_id.clone())
            .collect(),
        instance_ids,
        tunnel: TunnelParameters {
            region: account.region.clone(),
            ssh_document: policy::SSH_DOCUMENT.to_owned(),
            port_forwarding_document: policy::PORT_FORWARDING_DOCUMENT.to_owned(),
        },
        recipient,
        account: account.clone(),
        session: SessionPlan {
            name: session_name,
            policy: session_policy,
            duration: policy::SESSION_DURATION,
        },
    })
}

/// After an AWS failure: the refusal once the request has waited [`AWS_RETRY_FOR`] since `created`,
/// `None` while it should keep retrying.
pub fn aws_unavailable(created: Timestamp, now: Timestamp, role_arn: &str, error: &str) -> Option<Refusal> {
    let waited = now.duration_since(created);
    (waited >= SignedDuration::try_from(AWS_RETRY_FOR).unwrap_or(SignedDuration::ZERO)).then(|| {
        refuse(
            Reason::AwsUnavailable,
            format!(
                "could not obtain an AWS session from {role_arn} for {}s: {error}; check the AwsAccount's \
                 Ready condition, then create a new CredentialRequest",
                AWS_RETRY_FOR.as_secs()
            ),
        )
    })
}

/// `spec.publicKey` parses, and is of `spec.keyType`.
fn check_public_key(spec: &CredentialRequestSpec) -> Result<KeyType, Refusal> {
    let (actual, _) = parse_user_public_key(&spec.public_key)
        .map_err(|err| refuse(Reason::InvalidPublicKey, err.to_string()))?;
    let declared = spec.key_type;
    if actual != declared {
        return Err(refuse(
            Reason::KeyTypeMismatch,
            format!(
                "spec.keyType is {} but spec.publicKey is an {} key: set spec.keyType to {}",
                declared.as_str(),
                actual.ssh_name(),
                actual.as_str()
            ),
        ));
    }
    Ok(actual)
}

#[cfg(test)]
pub(crate) mod tests;

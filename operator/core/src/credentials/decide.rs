//! Whether to issue, and what: a CredentialRequest and the AccessRequest it names in, a [`Plan`] or a
//! [`Refusal`] out. Every refusal names the field at fault and what to do about it, because its
//! message is what the person running the CLI reads.

use std::time::Duration;

use age::x25519::Recipient;
use jiff::{SignedDuration, Timestamp};
use passport_crds::{
    AccessRequest, CredentialRequestSpec, KeyType,
    access_request::{AccessRequestStatus, Platform, TargetState},
    conditions::{self, types::APPROVED},
    credential_request::{InstanceHostKeys, TunnelParameters},
};

use super::{documents, policy, seal};
use crate::{
    account::Account,
    scripts::domain_username,
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
    /// The AccessRequest's status does not agree with its spec, or lacks what every approved, Active
    /// request has (a pinned username, a recorded approval, an expiry its approved duration allows):
    /// a sign of a status written by someone other than the operator.
    StatusMismatch,
    /// Too many new certificates for one AccessRequest ([`super::limit`]).
    RateLimited,
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
    /// The AccessRequest's `expiresAt` (checked against `activatedAt` + the approved duration):
    /// nothing issued outlives it.
    pub expires_at: Timestamp,
    pub key_type: KeyType,
    /// `spec.publicKey` without its comment (`ssh-ed25519 AAAA…`): what a reused certificate is
    /// matched on.
    pub public_key: String,
    /// The AccessRequest's UID.
    pub request_uid: String,
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
    let Some(username) = status.username.clone() else {
        return Err(mismatch(
            ar,
            "has no status.username, which the operator pins when it creates the request",
        ));
    };
    check_approval(ar, &status)?;
    let expires_at = checked_expiry(ar, request, &status)?;
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
    let (key_type, public_key) = check_public_key(spec)?;
    let recipient = seal::recipient(&spec.sealing_key)
        .map_err(|err| refuse(Reason::InvalidSealingKey, err.to_string()))?;
    let account = input.account.map_err(|problem| {
        refuse(
            Reason::AccountUnavailable,
            format!("the AwsAccount of AccessRequest {ar} cannot be used: {problem}"),
        )
    })?;

    let requested = |id: &str| request.spec.targets.iter().any(|s| s.instance_id == id);
    if let Some(stray) = status.targets.iter().find(|t| !requested(&t.instance_id)) {
        return Err(mismatch(
            ar,
            &format!(
                "lists target {} in status.targets, but spec.targets does not name it",
                stray.instance_id
            ),
        ));
    }
    // Issued for exactly the targets both the spec names and the status shows Ready.
    let ready: Vec<_> = status
        .targets
        .iter()
        .filter(|t| t.state == TargetState::Ready && requested(&t.instance_id))
        .collect();
    if ready.is_empty() {
        return Err(refuse(
            Reason::RequestNotActive,
            format!("AccessRequest {ar} has no Ready target: create a new AccessRequest"),
        ));
    }
    let instance_ids: Vec<String> = ready.iter().map(|t| t.instance_id.clone()).collect();
    let request_uid = request.metadata.uid.as_deref().unwrap_or_default();
    let session_name = policy::role_session_name(request_uid, &username, input.serial);
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
        public_key,
        request_uid: uid.clone(),
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
            ssh_document: documents::SSH_DOCUMENT.to_owned(),
            port_forwarding_document: documents::RDP_DOCUMENT.to_owned(),
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

/// The refusal for a status that does not hold together: names the AccessRequest, what is wrong,
/// and the fix.
fn mismatch(ar: &str, what: &str) -> Refusal {
    refuse(
        Reason::StatusMismatch,
        format!(
            "AccessRequest {ar} {what}: its status does not agree with what was requested and \
             approved, so no credentials are issued for it; an administrator should find out who \
             wrote its status (`kubectl get ar {ar} --show-managed-fields -o yaml`) and the \
             requester should create a new AccessRequest"
        ),
    )
}

/// `status.username` is the one the operator derives from `spec.requester` (with `expected`, the
/// masked name of the requester under the operator's key): the stem of a domain-controller name
/// counts. Refuses a status whose user belongs to someone else.
pub fn check_pinned_username(request: &AccessRequest, expected: &str) -> Result<(), Refusal> {
    let ar = request.metadata.name.as_deref().unwrap_or_default();
    let Some(username) = request.status.as_ref().and_then(|s| s.username.as_deref()) else {
        return Err(mismatch(
            ar,
            "has no status.username, which the operator pins when it creates the request",
        ));
    };
    if domain_username(username, "") != expected {
        return Err(mismatch(
            ar,
            &format!(
                "has status.username {username}, which is not the user pinned for its spec.requester {}",
                request.spec.requester
            ),
        ));
    }
    Ok(())
}

/// The approval is on record: `status.approvedAt` and `Approved=True`.
fn check_approval(ar: &str, status: &AccessRequestStatus) -> Result<(), Refusal> {
    if status.approved_at.is_none() {
        return Err(mismatch(ar, "is Active but has no status.approvedAt"));
    }
    if !conditions::is_true(&status.conditions, APPROVED) {
        return Err(mismatch(ar, "is Active but its Approved condition is not True"));
    }
    Ok(())
}

/// `status.expiresAt`, once it agrees with the rest: never past `status.activatedAt` plus the
/// approved duration (`status.approvedDuration`, itself never more than `spec.duration`).
fn checked_expiry(
    ar: &str,
    request: &AccessRequest,
    status: &AccessRequestStatus,
) -> Result<Timestamp, Refusal> {
    let Some(expires_at) = status.expires_at.as_ref().map(|t| t.0) else {
        return Err(mismatch(ar, "is Active but has no status.expiresAt"));
    };
    let Some(activated_at) = status.activated_at.as_ref().map(|t| t.0) else {
        return Err(mismatch(ar, "is Active but has no status.activatedAt"));
    };
    let approved = match status.approved_access() {
        Ok(Some(approved)) => approved,
        Ok(None) => return Err(mismatch(ar, "is Active but has no status.approvedDuration")),
        Err(err) => {
            return Err(mismatch(
                ar,
                &format!("has an unreadable status.approvedDuration ({err})"),
            ));
        }
    };
    let requested = request
        .spec
        .access_duration()
        .map_err(|err| mismatch(ar, &format!("has an unreadable spec.duration ({err})")))?;
    let allowed = approved.min(requested);
    let ceiling = SignedDuration::try_from(allowed)
        .ok()
        .and_then(|d| activated_at.checked_add(d).ok())
        .unwrap_or(activated_at);
    if expires_at > ceiling {
        return Err(mismatch(
            ar,
            &format!(
                "has status.expiresAt {expires_at}, later than status.activatedAt {activated_at} plus \
                 the approved duration ({}, spec.duration {}): {ceiling}",
                status.approved_duration.as_deref().unwrap_or_default(),
                request.spec.duration
            ),
        ));
    }
    Ok(expires_at)
}

/// `spec.publicKey` parses, and is of `spec.keyType`: the key type, and the key without its comment.
fn check_public_key(spec: &CredentialRequestSpec) -> Result<(KeyType, String), Refusal> {
    let (actual, key) = parse_user_public_key(&spec.public_key)
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
    let mut key = key;
    key.set_comment("");
    let line = key
        .to_openssh()
        .map_err(|err| refuse(Reason::InvalidPublicKey, err.to_string()))?;
    Ok((actual, line.trim().to_owned()))
}

#[cfg(test)]
pub(crate) mod tests;

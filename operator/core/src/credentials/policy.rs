//! The STS session policy that scopes the AWS credentials a CredentialRequest carries.
//!
//! The account's role is assumed again for every CredentialRequest, with an inline session policy:
//! the effective permissions are the *intersection* of the role's policies and this one, so the
//! credentials can do no more than what is written here, however broad the role is.
//!
//! * `ssm:StartSession` on the request's instances (`instance/i-…`, or `managed-instance/mi-…`) and on
//!   passport's own two Session Manager documents ([`documents`]: SSH to port 22, RDP to port 3389),
//!   never a stock one such as `AWS-StartPortForwardingSession`, which reaches any port,
//!   with `ssm:SessionDocumentAccessCheck`: without it, a StartSession that names no document opens a
//!   full shell (`SSM-SessionManagerRunShell`, as `ssm-user`) whatever documents the policy lists.
//! * `ssm:TerminateSession` and `ssm:ResumeSession` on the sessions these credentials start. Session
//!   Manager names a session `<caller>-<random>`; for an assumed-role caller `<caller>` is the *role
//!   session name* (the part of `aws:userid` after the colon). AWS's sample policies use
//!   `session/${aws:username}-*`, but `aws:username` does not exist for assumed roles (a statement
//!   whose variable cannot be resolved matches nothing), and `${aws:userid}` expands to
//!   `AROA…:<session name>`, which no session id starts with. The session name is ours to choose, so
//!   the policy names it literally: `session/<role session name>-*`.
//! * Every statement carries `DateLessThan aws:CurrentTime <expiresAt>`: STS will not issue
//!   credentials for less than 15 minutes, and a request may have less left than that.
//! * With `spec.sourceCidrs`, every statement also carries `IpAddress aws:SourceIp` (which does not
//!   apply to calls made through a VPC endpoint; those are then denied).
//!
//! STS refuses inline session policies over [`MAX_POLICY_CHARS`] characters, so the policy is compact
//! JSON, and a request naming more instances than fit is refused up front ([`PolicyError::TooLarge`]).

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::documents;

/// STS's limit on the plaintext of an inline session policy (AssumeRole `Policy`).
pub const MAX_POLICY_CHARS: usize = 2048;
/// `DurationSeconds` for every scoped session: STS's minimum. The CLI fetches fresh credentials with
/// every certificate anyway, and a short session bounds how long credentials outlive a request that
/// ends early; the policy's `aws:CurrentTime` condition already stops them at `expiresAt`.
pub const SESSION_DURATION: Duration = Duration::from_secs(900);
/// STS's limit on `RoleSessionName`.
pub const MAX_SESSION_NAME: usize = 64;

/// Everything the policy depends on.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The AwsAccount's `spec.roleArn`: gives the partition and the account id.
    pub role_arn: &'a str,
    pub region: &'a str,
    /// The role session name the credentials are issued under (see [`role_session_name`]).
    pub session_name: &'a str,
    /// The instances the AccessRequest grants (`i-…` or `mi-…`).
    pub instance_ids: &'a [String],
    /// The AccessRequest's `spec.sourceCidrs`; empty for no address restriction.
    pub source_cidrs: &'a [String],
    /// The AccessRequest's `expiresAt`.
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "AwsAccount spec.roleArn {0:?} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)"
    )]
    RoleArn(String),
    #[error(
        "the AccessRequest names {targets} instances, but AWS session credentials can be scoped to at most \
         {max_targets} of them (STS limits a session policy to {MAX_POLICY_CHARS} characters); split the \
         access into AccessRequests of at most {max_targets} instances"
    )]
    TooLarge { targets: usize, max_targets: usize },
}

/// The partition (`aws`, `aws-cn`, …) and account id of an IAM role ARN.
pub fn partition_and_account(role_arn: &str) -> Result<(&str, &str), PolicyError> {
    let bad = || PolicyError::RoleArn(role_arn.to_owned());
    let mut parts = role_arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    if partition.is_empty() || !account_ok || !resource.starts_with("role/") {
        return Err(bad());
    }
    Ok((partition, account))
}

/// `passport-<first 8 characters of the request UID>-<username>-<first 8 hex digits of the serial>`,
/// cut to STS's 64 characters, with any character outside `[\w+=,.@-]` replaced by `-`. CloudTrail
/// shows the role session name: the UID joins it to the request (its Logbook, its SSM command
/// comments), the serial digits to the certificate (in every sshd log line).
pub fn role_session_name(request_uid: &str, username: &str, serial: u64) -> String {
    let suffix = format!("-{:08x}", serial >> 32);
    let prefix = role_session_prefix(request_uid);
    let room = MAX_SESSION_NAME - prefix.len() - suffix.len();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    let user: String = username
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(room)
        .collect();
    format!("{prefix}{user}{suffix}")
}

/// `passport-<first 8 characters of the request UID>-`: what every role session name issued for the
/// request starts with, so the Session Manager sessions opened with its credentials can be found
/// (their owner is the role session) and ended at revocation.
pub fn role_session_prefix(request_uid: &str) -> String {
    let uid: String = request_uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("passport-{uid}-")
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Document<'a> {
    version: &'static str,
    statement: Vec<Statement<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statement<'a> {
    sid: &'static str,
    effect: &'static str,
    action: Vec<&'static str>,
    resource: Vec<String>,
    condition: Condition<'a>,
}

#[derive(Serialize, Clone)]
struct Condition<'a> {
    #[serde(rename = "Bool", skip_serializing_if = "Option::is_none")]
    document_check: Option<DocumentCheck>,
    #[serde(rename = "DateLessThan")]
    before: CurrentTime,
    #[serde(rename = "IpAddress", skip_serializing_if = "Option::is_none")]
    source_ip: Option<SourceIp<'a>>,
}

#[derive(Serialize, Clone)]
struct DocumentCheck {
    #[serde(rename = "ssm:SessionDocumentAccessCheck")]
    check: &'static str,
}

#[derive(Serialize, Clone)]
struct CurrentTime {
    #[serde(rename = "aws:CurrentTime")]
    time: String,
}

#[derive(Serialize, Clone)]
struct SourceIp<'a> {
    #[serde(rename = "aws:SourceIp")]
    cidrs: &'a [String],
}

/// The ARN `ssm:StartSession` checks for a target: an EC2 instance, or an SSM managed (hybrid) node.
pub fn target_arn(partition: &str, region: &str, account: &str, instance_id: &str) -> String {
    if instance_id.starts_with("mi-") {
        format!("arn:{partition}:ssm:{region}:{account}:managed-instance/{instance_id}")
    } else {
        format!("arn:{partition}:ec2:{region}:{account}:instance/{instance_id}")
    }
}

/// The session policy, as compact JSON of at most [`MAX_POLICY_CHARS`] characters.
pub fn session_policy(scope: &Scope<'_>) -> Result<String, PolicyError> {
    let policy = render(scope, scope.instance_ids)?;
    if policy.len() <= MAX_POLICY_CHARS {
        return Ok(policy);
    }
    let empty = render(scope, &[])?.len();
    let (partition, account) = partition_and_account(scope.role_arn)?;
    let longest = scope
        .instance_ids
        .iter()
        .map(|id| target_arn(partition, scope.region, account, id).len())
        .max()
        .unwrap_or(0);
    // Each instance adds its quoted ARN and a comma.
    Err(PolicyError::TooLarge {
        targets: scope.instance_ids.len(),
        max_targets: MAX_POLICY_CHARS.saturating_sub(empty) / (longest + 3),
    })
}

fn render(scope: &Scope<'_>, instance_ids: &[String]) -> Result<String, PolicyError> {
    let (partition, account) = partition_and_account(scope.role_arn)?;
    let region = scope.region;
    let condition = Condition {
        document_check: None,
        before: CurrentTime {
            time: scope.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        },
        source_ip: (!scope.source_cidrs.is_empty()).then_some(SourceIp {
            cidrs: scope.source_cidrs,
        }),
    };
    let mut targets: Vec<String> = instance_ids
        .iter()
        .map(|id| target_arn(partition, region, account, id))
        .collect();
    targets.extend(
        documents::session_documents()
            .iter()
            .map(|document| documents::document_arn(partition, region, account, document.name)),
    );
    let document = Document {
        version: "2012-10-17",
        statement: vec![
            Statement {
                sid: "StartSessionOnTargets",
                effect: "Allow",
                action: vec!["ssm:StartSession"],
                resource: targets,
                condition: Condition {
                    document_check: Some(DocumentCheck { check: "true" }),
                    ..condition.clone()
                },
            },
            Statement {
                sid: "OwnSessions",
                effect: "Allow",
                action: vec!["ssm:TerminateSession", "ssm:ResumeSession"],
                resource: vec![format!(
                    "arn:{partition}:ssm:{region}:{account}:session/{}-*",
                    scope.session_name
                )],
                condition,
            },
        ],
    };
    // Serialising plain strings and vectors cannot fail.
    Ok(serde_json::to_string(&document).unwrap_or_default())
}

#[cfg(test)]
mod tests;

//! The CredentialRequest's status once decided, the logbook entry for an issue, and when a decided
//! CredentialRequest may be deleted.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use passport_crds::{
    common::Time,
    conditions::{self, ConditionStatus, Update, types::ISSUED},
    credential_request::{CredentialRequestStatus, IssuedCertificate, SealedSecret},
    sealed::AwsSession,
};

use passport_crds::logbook::LogbookRecord;
use serde_json::{Value, json};

use super::{
    SessionCredentials,
    decide::{Plan, Refusal},
    limit::Remembered,
};
use crate::{
    logbook::{LogAction, LogEvent, record},
    ssh_ca::IssuedCert,
};

/// The `Issued=True` reason of a certificate given again ([`super::limit`]).
pub const REUSED: &str = "Reused";
/// The `Issued=Unknown` reason while a CredentialRequest waits its turn ([`super::limit`]).
pub const RATE_LIMITED: &str = "RateLimited";

/// How long a decided CredentialRequest is kept once it is of no use: past its `validBefore` when
/// issued, past its creation when refused. Long enough to read what happened, short enough that
/// namespaces do not fill up (the CLI makes one per connection).
pub const KEEP_FOR: Duration = Duration::from_secs(3600);

/// Whether the request was already issued or refused: it is never decided twice.
pub fn is_decided(status: Option<&CredentialRequestStatus>) -> bool {
    status.is_some_and(|s| {
        matches!(
            conditions::status_of(&s.conditions, ISSUED),
            Some(ConditionStatus::True | ConditionStatus::False)
        )
    })
}

/// The status of an issued request.
pub fn issued(
    plan: &Plan,
    certificates: &[IssuedCert],
    sealed_secrets: Vec<SealedSecret>,
    generation: Option<i64>,
    now: Timestamp,
) -> CredentialRequestStatus {
    let valid_before = certificates
        .iter()
        .map(|c| c.valid_before)
        .min()
        .unwrap_or(plan.expires_at);
    let mut status = CredentialRequestStatus {
        certificates: certificates
            .iter()
            .map(|c| IssuedCertificate {
                algorithm: c.algorithm.clone(),
                certificate: c.certificate.clone(),
            })
            .collect(),
        valid_before: Some(Time(valid_before)),
        username: Some(plan.username.clone()),
        host_keys: plan.host_keys.clone(),
        tunnel: Some(plan.tunnel.clone()),
        sealed_secrets,
        conditions: Vec::new(),
        observed_generation: generation,
    };
    let algorithms: Vec<&str> = certificates.iter().map(|c| c.algorithm.as_str()).collect();
    let message = format!(
        "issued {} certificate(s) ({}) for {} valid until {valid_before}, and an AWS session for {} instance(s)",
        certificates.len(),
        algorithms.join(", "),
        plan.username,
        plan.instance_ids.len(),
    );
    conditions::set(
        &mut status.conditions,
        Update::new(ISSUED, true, "Issued").message(message),
        generation,
        now,
    );
    status
}

/// The status of a request answered with a certificate issued before for the same key
/// ([`super::limit`]): the same certificates, this plan's host keys and tunnel, secrets sealed to
/// this request's sealing key.
pub fn reused(
    plan: &Plan,
    remembered: &Remembered,
    sealed_secrets: Vec<SealedSecret>,
    generation: Option<i64>,
    now: Timestamp,
) -> CredentialRequestStatus {
    let mut status = issued(plan, &remembered.certificates, sealed_secrets, generation, now);
    let message = format!(
        "reused the {} certificate serial {} issued to CredentialRequest {} for the same key, for {} valid \
         until {} (no new signature or AWS session)",
        remembered.key_type.as_str(),
        remembered.serial,
        remembered.issued_for,
        remembered.username,
        remembered.valid_before(),
    );
    conditions::set(
        &mut status.conditions,
        Update::new(ISSUED, true, REUSED).message(message),
        generation,
        now,
    );
    status
}

/// The status of a refused request: nothing but the reason.
pub fn refused(refusal: &Refusal, generation: Option<i64>, now: Timestamp) -> CredentialRequestStatus {
    let mut status = CredentialRequestStatus {
        observed_generation: generation,
        ..CredentialRequestStatus::default()
    };
    conditions::set(
        &mut status.conditions,
        Update::new(ISSUED, false, refusal.reason.as_str()).message(refusal.message.clone()),
        generation,
        now,
    );
    status
}

/// The status while issuing is retried (AWS failing, say): `Issued=Unknown` with the reason, so the
/// CLI shows why it waits. `None` when the status already says exactly that: nothing to write.
pub fn retrying(
    current: Option<&CredentialRequestStatus>,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<CredentialRequestStatus> {
    let said = current
        .and_then(|s| conditions::observe(&s.conditions, ISSUED))
        .is_some_and(|c| c.status == ConditionStatus::Unknown && c.reason == reason && c.message == message);
    if said {
        return None;
    }
    let mut status = current.cloned().unwrap_or_default();
    let update = Update::new(ISSUED, ConditionStatus::Unknown, reason).message(message);
    conditions::set(&mut status.conditions, update, generation, now);
    Some(status)
}

/// The session the CLI unseals. Its expiration is the earlier of STS's and the AccessRequest's
/// `expiresAt`: past the latter the session policy denies everything, so the CLI should not count on it.
pub fn aws_session(plan: &Plan, credentials: &SessionCredentials) -> AwsSession {
    let expiration = credentials.expiration.min(plan.expires_at);
    AwsSession {
        access_key_id: credentials.access_key_id.clone(),
        secret_access_key: credentials.secret_access_key.clone(),
        session_token: credentials.session_token.clone(),
        expiration: expiration.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        region: plan.account.region.clone(),
    }
}

/// The logbook entry on the AccessRequest. Identifiers only: the key type, the certificate serial
/// and key id, its end, the targets and the role session name (which CloudTrail shows), never a
/// credential.
pub fn issued_event(
    plan: &Plan,
    credential_request: &str,
    requester: &str,
    valid_before: Timestamp,
) -> LogEvent {
    LogEvent::normal(
        LogAction::CredentialIssued,
        format!(
            "credentials issued to {requester} for {} by CredentialRequest {credential_request}: \
             {} certificate serial {} (key id \"{}\") valid until {valid_before} for target(s) {}, \
             AWS role session {}",
            plan.username,
            plan.key_type.as_str(),
            plan.serial,
            plan.key_id,
            plan.instance_ids.join(", "),
            plan.session.name,
        ),
    )
}

/// The JSON patch (RFC 6902) on the AccessRequest's status subresource that appends `event` by
/// `actor` to `status.logbook`, given the record as read (`current`) from the object of `uid` at
/// `resource_version`. Optimistic: it applies only to the record it was computed from, so an entry
/// written meanwhile makes it fail (the apiserver answers 422 or 409) and the caller reads again and
/// retries; nothing is ever overwritten.
///
/// * an entry appended: `test` the last entry's seq, `add` at the end, `test` that the new entry is
///   the one right after it (so the array had exactly the length read);
/// * only counted (the record is full): `test` the count;
/// * no entries yet: `test` the resourceVersion and write the record whole.
pub fn logbook_patch(
    current: Option<&LogbookRecord>,
    uid: &str,
    resource_version: &str,
    event: &LogEvent,
    actor: &str,
    now: Timestamp,
) -> Vec<Value> {
    let mut next = current.cloned().unwrap_or_default();
    let appended = record::append(&mut next, event, actor, now);
    // Still Active: a credential is never logged (nor handed out) after the request began to end.
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/uid", "value": uid}),
        json!({"op": "test", "path": "/status/phase", "value": "Active"}),
    ];
    let entries = current.map_or(0, |r| r.entries.len());
    if entries == 0 {
        ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}));
        ops.push(json!({"op": "add", "path": "/status/logbook", "value": next}));
        return ops;
    }
    let last = entries - 1;
    let last_seq = current.map_or(0, LogbookRecord::last_seq);
    ops.push(json!({"op": "test", "path": format!("/status/logbook/entries/{last}/seq"), "value": last_seq}));
    if appended.is_some()
        && let Some(entry) = next.entries.last()
    {
        ops.push(json!({"op": "add", "path": "/status/logbook/entries/-", "value": entry}));
        ops.push(json!({"op": "test", "path": format!("/status/logbook/entries/{entries}"), "value": entry}));
    }
    match current.and_then(|r| r.credentials.as_ref()) {
        Some(count) => {
            ops.push(
                json!({"op": "test", "path": "/status/logbook/credentials/count", "value": count.count}),
            );
            ops.push(
                json!({"op": "replace", "path": "/status/logbook/credentials", "value": next.credentials}),
            );
        }
        None if next.credentials.is_some() => {
            ops.push(json!({"op": "add", "path": "/status/logbook/credentials", "value": next.credentials}));
        }
        None => {}
    }
    ops
}

/// When a decided CredentialRequest (created at `created`) may be deleted; `None` while undecided.
pub fn delete_after(
    created: Option<Timestamp>,
    status: Option<&CredentialRequestStatus>,
) -> Option<Timestamp> {
    if !is_decided(status) {
        return None;
    }
    let keep = SignedDuration::try_from(KEEP_FOR).unwrap_or(SignedDuration::ZERO);
    let issued = status.is_some_and(|s| conditions::is_true(&s.conditions, ISSUED));
    let from = if issued {
        status
            .and_then(|s| s.valid_before.as_ref())
            .map(|t| t.0)
            .or(created)
    } else {
        created
    };
    from.and_then(|t| t.checked_add(keep).ok())
}

#[cfg(test)]
mod tests;

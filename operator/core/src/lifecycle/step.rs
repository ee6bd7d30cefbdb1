//! One step of the lifecycle: the phase decides what happens; each arm is small.

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::{
    Phase,
    access_request::{Platform, TargetState, TargetStatus},
    common::Time,
};

use super::{
    AccountAccess, Inputs, PROVISION_TIMEOUT, Purpose, SsmCommand, Transition, extension, lost_send,
    poll_interval, revoke,
    summary::{record, refresh_conditions},
    targets::{observe_provisioning, record_intent},
};

pub use super::targets::MAX_PROVISION_ATTEMPTS;
pub(super) use super::targets::overdue;
use crate::{
    approval::Approval,
    logbook::{LogAction, LogEvent},
    time::{add, elapsed, whole_second},
};

/// How often a request held back by the audit sink looks again.
const AUDIT_RETRY: Duration = Duration::from_secs(5);

/// Computes the next status and actions. Pure: same inputs, same decision.
pub fn step(input: Inputs<'_>) -> Transition {
    let mut d = Transition {
        status: input.status.clone(),
        commands: Vec::new(),
        events: Vec::new(),
        requeue_after: None,
        release: false,
    };
    d.status.observed_generation = input.generation;
    if d.status.username.is_none() {
        d.status.username = Some(input.username.to_owned());
        let spec = input.spec;
        let message = format!(
            "{} requested {} target(s) for {}{}: {}",
            spec.requester,
            spec.targets.len(),
            spec.duration,
            spec.ticket
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default(),
            spec.reason
        );
        event(&mut d, LogAction::Created, message, false);
    }
    if d.status.targets.is_empty() {
        d.status.targets = input
            .spec
            .targets
            .iter()
            .map(|t| TargetStatus {
                instance_id: t.instance_id.clone(),
                ..TargetStatus::default()
            })
            .collect();
    }
    match d.status.phase {
        Phase::Pending => pending(&input, &mut d),
        Phase::Provisioning => provisioning(&input, &mut d),
        Phase::Active => active(&input, &mut d),
        Phase::Revoking => revoke::revoking(&input, &mut d),
        Phase::Completed | Phase::Expired | Phase::Denied | Phase::Failed => d.release = true,
    }
    record(&input, &mut d);
    refresh_conditions(&input, &mut d.status);
    d
}

fn pending(input: &Inputs<'_>, d: &mut Transition) {
    if input.deleting || input.spec.completed {
        let message = if input.deleting {
            "deleted before approval"
        } else {
            "completed before approval"
        };
        finish(d, Phase::Completed, input.now, LogAction::Completed, message);
        return;
    }
    match input.approval {
        Approval::Waiting { deadline, .. } if input.now >= *deadline => {
            let message = "no approval before the policy's pending timeout";
            finish(d, Phase::Denied, input.now, LogAction::Denied, message);
        }
        Approval::Waiting { deadline, .. } => d.requeue_after = Some(until(input.now, *deadline)),
        Approval::Denied { by, message } => {
            finish(
                d,
                Phase::Denied,
                input.now,
                LogAction::Denied,
                &format!("denied by {by}: {message}"),
            );
        }
        Approval::Refused { message } => {
            finish(
                d,
                Phase::Denied,
                input.now,
                LogAction::Denied,
                &format!("refused: {message}"),
            );
        }
        // Fail closed: nothing new is granted while the audit trail cannot keep up.
        Approval::Approved { .. } if input.audit_hold.is_some() => {
            d.status.message = format!(
                "approved, waiting for the audit sink: {}",
                input.audit_hold.unwrap_or_default()
            );
            d.requeue_after = Some(AUDIT_RETRY);
        }
        Approval::Approved { by } => {
            d.status.message.clear();
            d.status.approved_at = Some(Time(input.now));
            d.status.approved_duration = Some(input.spec.duration.clone());
            event(d, LogAction::Approved, format!("approved by {by}"), false);
            match input.account {
                AccountAccess::Unusable(problem) => {
                    finish(
                        d,
                        Phase::Failed,
                        input.now,
                        LogAction::Failed,
                        &problem.to_string(),
                    );
                    return;
                }
                AccountAccess::Usable { name, role } => {
                    d.status.account = Some(name.clone());
                    d.status.account_role = Some(role.clone());
                }
            }
            d.status.phase = Phase::Provisioning;
            provisioning(input, d);
        }
    }
}

fn provisioning(input: &Inputs<'_>, d: &mut Transition) {
    if input.deleting || input.spec.completed {
        revoke::start(input, d, Phase::Completed);
        return;
    }
    if denied_after_approval(input, d) {
        return;
    }
    if let AccountAccess::Unusable(problem) = input.account {
        account_lost(input, d, &problem.to_string());
        return;
    }
    let timed_out = d
        .status
        .approved_at
        .as_ref()
        .is_some_and(|t| elapsed(t.0, input.now) >= PROVISION_TIMEOUT);
    for target in &mut d.status.targets {
        observe_provisioning(target, input, timed_out);
    }
    let mut send: Vec<(Platform, String)> = Vec::new();
    for target in &mut d.status.targets {
        // Sent again only once SSM is known not to hold the lost send: no command is ever doubled.
        let unanswered =
            lost_send(target) && !input.observations.lost_sends.contains_key(&target.instance_id);
        if unanswered {
            continue;
        }
        if let Some(platform) = record_intent(target, input.now) {
            send.push((platform, target.instance_id.clone()));
        }
    }
    push_by_platform(d, Purpose::Provision, &send);
    extension::expire_windows_accounts(input, d);

    let in_flight = d
        .status
        .targets
        .iter()
        .any(|t| matches!(t.state, TargetState::Pending | TargetState::Provisioning));
    if in_flight {
        d.requeue_after = Some(poll_interval(since(&d.status.approved_at, input.now)));
    } else if d.status.targets.iter().all(|t| t.state == TargetState::Ready) {
        activate(input, d);
    } else {
        let failed: Vec<String> = d
            .status
            .targets
            .iter()
            .filter(|t| t.state == TargetState::Failed)
            .map(|t| format!("{}: {}", t.instance_id, t.message))
            .collect();
        event(
            d,
            LogAction::Failed,
            format!("provisioning failed on {}", failed.join("; ")),
            true,
        );
        revoke::start(input, d, Phase::Failed);
    }
}

/// The AwsAccount went away or stopped allowing the namespace after approval: what was granted is
/// revoked (through the account as it was pinned at approval), and the request fails saying why.
fn account_lost(input: &Inputs<'_>, d: &mut Transition, problem: &str) {
    d.status.message = problem.to_owned();
    event(
        d,
        LogAction::Failed,
        format!("{problem}; access is being revoked"),
        true,
    );
    revoke::start(input, d, Phase::Failed);
}

fn activate(input: &Inputs<'_>, d: &mut Transition) {
    d.status.phase = Phase::Active;
    // Kubernetes stores times to the second: truncate now, so the deadline kept in memory is exactly
    // the expiresAt everyone reads back.
    d.status.activated_at = Some(Time(whole_second(input.now)));
    let count = d.status.targets.len();
    event(
        d,
        LogAction::Provisioned,
        format!("user {} ready on {count} target(s)", input.username),
        false,
    );
    active(input, d);
}

fn active(input: &Inputs<'_>, d: &mut Transition) {
    if let AccountAccess::Unusable(problem) = input.account {
        account_lost(input, d, &problem.to_string());
        return;
    }
    if input.deleting || input.spec.completed {
        revoke::start(input, d, Phase::Completed);
        return;
    }
    if denied_after_approval(input, d) {
        return;
    }
    let activated = d.status.activated_at.as_ref().map_or(input.now, |t| t.0);
    let expires = add(activated, approved_duration(input, d));
    d.status.expires_at = Some(Time(expires));
    if input.now >= expires {
        revoke::start(input, d, Phase::Expired);
    } else {
        d.requeue_after = Some(until(input.now, expires));
        extension::move_windows_expiry(d, expires, input.now);
    }
}

/// How long access lasts: spec.duration once approved. A grown duration is an extension, approved
/// like a request; until it is, the approved duration stands and status.message says why.
fn approved_duration(input: &Inputs<'_>, d: &mut Transition) -> Duration {
    let requested = input.requested;
    let Some(approved) = input.approved.filter(|approved| *approved < requested) else {
        d.status.approved_duration = Some(input.spec.duration.clone());
        return requested;
    };
    let wanted = &input.spec.duration;
    match input.approval {
        // More access is new access: it waits for the audit sink like a new grant.
        Approval::Approved { .. } if input.audit_hold.is_some() => {
            d.status.message = format!(
                "extension to {wanted} approved, waiting for the audit sink: {}",
                input.audit_hold.unwrap_or_default()
            );
            approved
        }
        Approval::Approved { by } => {
            d.status.approved_duration = Some(wanted.clone());
            d.status.extended_at = Some(Time(input.now));
            d.status.message.clear();
            event(
                d,
                LogAction::Extended,
                format!("extended to {wanted}, approved by {by}"),
                false,
            );
            requested
        }
        Approval::Waiting { message, .. } => {
            d.status.message = format!("extension to {wanted} awaits approval: {message}");
            approved
        }
        // A reviewer's Deny ends the whole request (see `denied_after_approval`).
        Approval::Denied { by, message } => {
            d.status.message = format!("extension to {wanted} denied by {by}: {message}");
            approved
        }
        Approval::Refused { message } => {
            d.status.message = format!("extension to {wanted} refused: {message}");
            approved
        }
    }
}

/// A reviewer denied the request after it was approved: what was granted is revoked.
fn denied_after_approval(input: &Inputs<'_>, d: &mut Transition) -> bool {
    let Approval::Denied { by, message } = input.approval else {
        return false;
    };
    d.status.message = format!("denied by {by} after approval: {message}");
    event(d, LogAction::Denied, d.status.message.clone(), true);
    revoke::start(input, d, Phase::Denied);
    true
}

pub(super) fn finish(d: &mut Transition, phase: Phase, now: Timestamp, action: LogAction, message: &str) {
    d.status.phase = phase;
    d.status.message = message.to_owned();
    d.status.outcome = None;
    d.status.ended_at = Some(Time(now));
    d.release = true;
    d.requeue_after = None;
    event(
        d,
        action,
        message.to_owned(),
        matches!(phase, Phase::Failed | Phase::Denied),
    );
}

/// Commands for `(platform, instance)` pairs: one batch per platform, Linux first.
pub(super) fn push_by_platform(d: &mut Transition, purpose: Purpose, send: &[(Platform, String)]) {
    for platform in [Platform::Linux, Platform::Windows] {
        let ids: Vec<String> = send
            .iter()
            .filter(|(p, _)| *p == platform)
            .map(|(_, id)| id.clone())
            .collect();
        push_batches(d, purpose, platform, &ids);
    }
}

/// SSM-sized commands (at most 50 instances each).
pub(super) fn push_batches(
    d: &mut Transition,
    purpose: Purpose,
    platform: Platform,
    instance_ids: &[String],
) {
    for chunk in instance_ids.chunks(50) {
        d.commands.push(SsmCommand {
            purpose,
            platform,
            instance_ids: chunk.to_vec(),
            account_expires_at: None,
        });
    }
}

pub(super) fn event(d: &mut Transition, action: LogAction, message: String, warning: bool) {
    d.events.push(if warning {
        LogEvent::warning(action, message)
    } else {
        LogEvent::normal(action, message)
    });
}

fn since(from: &Option<Time>, now: Timestamp) -> Duration {
    from.as_ref().map_or(Duration::ZERO, |t| elapsed(t.0, now))
}

fn until(now: Timestamp, deadline: Timestamp) -> Duration {
    elapsed(now, deadline).max(Duration::from_millis(100))
}

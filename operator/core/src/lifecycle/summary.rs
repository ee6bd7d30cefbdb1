//! What a step says about itself: its Logbook entries in the durable record, and the conditions.

use passport_crds::{
    Phase,
    access_request::{AccessRequestStatus, TargetState},
    conditions::{self, Update, types::*},
};

use super::{Inputs, Transition, revoke};
use crate::{
    approval::Approval,
    logbook::{self, LogAction},
};

/// Every logbook event of this step goes into the durable record, in the same status write as the
/// change it describes.
pub(super) fn record(input: &Inputs<'_>, d: &mut Transition) {
    if d.events.is_empty() {
        return;
    }
    let record = d.status.logbook.get_or_insert_with(Default::default);
    for event in &d.events {
        logbook::record::append(record, event, &actor(event.action, input), input.now);
    }
}

/// Who did what an event records: the requester asks and completes, reviewers approve, extend and
/// deny; the operator does everything else by itself.
fn actor(action: LogAction, input: &Inputs<'_>) -> String {
    match (action, input.approval) {
        (LogAction::Created | LogAction::Completed, _) => input.spec.requester.clone(),
        (LogAction::Approved | LogAction::Extended, Approval::Approved { by }) if !by.is_empty() => {
            by.clone()
        }
        (LogAction::Denied, Approval::Denied { by, .. }) => by.clone(),
        _ => logbook::record::OPERATOR_ACTOR.to_owned(),
    }
}

pub(super) fn refresh_conditions(input: &Inputs<'_>, status: &mut AccessRequestStatus) {
    let (generation, now) = (input.generation, input.now);
    let conditions = &mut status.conditions;
    let approved = match (status.approved_at.is_some(), input.approval) {
        (true, _) => Update::new(APPROVED, true, "Approved"),
        (false, Approval::Approved { by }) => {
            Update::new(APPROVED, true, "Approved").message(format!("approved by {by}"))
        }
        (false, Approval::Waiting { reason, message, .. }) => {
            Update::new(APPROVED, false, reason.as_str()).message(message.clone())
        }
        (false, Approval::Denied { message, .. }) => {
            Update::new(APPROVED, false, "Denied").message(message.clone())
        }
        (false, Approval::Refused { message }) => {
            Update::new(APPROVED, false, "Refused").message(message.clone())
        }
    };
    conditions::set(conditions, approved, generation, now);
    let held = status.phase == Phase::Pending && input.audit_hold.is_some();
    if held {
        let update = Update::new(AUDIT_SINK_AVAILABLE, false, "AuditSinkUnavailable")
            .message(input.audit_hold.unwrap_or_default());
        conditions::set(conditions, update, generation, now);
    } else if conditions::status_of(conditions, AUDIT_SINK_AVAILABLE).is_some() {
        conditions::set(
            conditions,
            Update::new(AUDIT_SINK_AVAILABLE, true, "Delivering"),
            generation,
            now,
        );
    }
    let ready_count = status
        .targets
        .iter()
        .filter(|t| t.state == TargetState::Ready)
        .count();
    let all_ready = ready_count == status.targets.len() && status.phase == Phase::Active;
    let mut summary = format!("{ready_count}/{} targets ready", status.targets.len());
    if !status.message.is_empty() && !all_ready {
        summary = format!("{summary}: {}", status.message);
    }
    let stuck: Vec<&str> = revoke::stuck(&status.targets)
        .map(|t| t.instance_id.as_str())
        .collect();
    let was_stuck = conditions::find(conditions, REVOCATION_STUCK).is_some();
    if !stuck.is_empty() {
        let message = format!(
            "revocation keeps failing on {}: {}",
            stuck.join(", "),
            revoke::ADMIN_HINT
        );
        let update = Update::new(REVOCATION_STUCK, true, "RevokeFailing").message(message);
        conditions::set(conditions, update, generation, now);
    } else if was_stuck {
        conditions::set(
            conditions,
            Update::new(REVOCATION_STUCK, false, "NotStuck"),
            generation,
            now,
        );
    }
    let phase_reason = format!("{:?}", status.phase);
    for type_ in [PROVISIONED, READY] {
        let update = Update::new(type_, all_ready, &phase_reason).message(summary.clone());
        conditions::set(conditions, update, generation, now);
    }
}

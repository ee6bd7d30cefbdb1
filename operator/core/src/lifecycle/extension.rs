//! Windows accounts carry their own expiry, a backstop should no revoke ever arrive: set when they
//! are provisioned, moved later when the request is extended. (Linux users need none of this: the
//! certificates that are their only way in never outlive `expiresAt`.)

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::{
    access_request::{Platform, TargetState},
    common::Time,
};

use super::{Inputs, PROVISION_TIMEOUT, Purpose, Transition, step::push_batches};
use crate::time::{add, elapsed};

/// How soon an extension whose command could not be sent is tried again.
const RETRY: Duration = Duration::from_secs(30);

/// The expiry given to the Windows provisioning commands of this step: the approved duration from
/// now, plus the time provisioning may take (access starts when all targets are ready), so never
/// before `expiresAt` and at most [`PROVISION_TIMEOUT`] after it.
pub(super) fn expire_windows_accounts(input: &Inputs<'_>, d: &mut Transition) {
    let approved = input.approved.unwrap_or(input.requested);
    let expires = add(add(input.now, approved), PROVISION_TIMEOUT);
    for command in &mut d.commands {
        if command.purpose == Purpose::Provision && command.platform == Platform::Windows {
            command.account_expires_at = Some(expires);
        }
    }
}

/// After an extension, sends the Windows targets whose account expires before `expires` a command
/// that moves it. Targets provisioned by an operator that did not record the expiry keep the
/// backstop it set.
pub(super) fn move_windows_expiry(d: &mut Transition, expires: Timestamp) {
    let lagging: Vec<String> = d
        .status
        .targets
        .iter()
        .filter(|t| t.platform == Some(Platform::Windows) && t.state == TargetState::Ready)
        .filter(|t| t.account_expires_at.as_ref().is_some_and(|at| at.0 < expires))
        .map(|t| t.instance_id.clone())
        .collect();
    if lagging.is_empty() {
        return;
    }
    let first = d.commands.len();
    push_batches(d, Purpose::Extend, Platform::Windows, &lagging);
    for command in &mut d.commands[first..] {
        command.account_expires_at = Some(expires);
    }
    // Looked at again soon in case a send fails; once sent, the recorded expiry stops the resends.
    d.requeue_after = d.requeue_after.map(|after| after.min(RETRY));
}

/// The message of a target whose extension command could not be sent.
pub(super) fn not_moved(expires: Timestamp, now: Timestamp, message: &str) -> String {
    let left = elapsed(now, expires).as_secs() / 60;
    format!("the account's own expiry was not moved to {expires} ({left} min from now), retrying: {message}")
}

/// Records on the targets the expiry a sent command gives their account.
pub(super) fn record_sent(target: &mut passport_crds::access_request::TargetStatus, at: Option<Timestamp>) {
    if let Some(at) = at {
        target.account_expires_at = Some(Time(at));
    }
}

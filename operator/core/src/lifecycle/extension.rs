//! Windows accounts carry their own expiry, a backstop should no revoke ever arrive: set when they
//! are provisioned, moved later when the request is extended. (Linux users need none of this: the
//! certificates that are their only way in never outlive `expiresAt`.)
//!
//! An extension counts as moved once SSM accepted its command: should the script then fail on the
//! instance, the account expires at the earlier time (access ends early, never late).

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::{
    access_request::{Platform, TargetState, TargetStatus},
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
/// backstop it set. A target whose last extension could not be sent waits [`RETRY`] (its
/// `retry_at`, which a revocation ignores) before the next.
pub(super) fn move_windows_expiry(d: &mut Transition, expires: Timestamp, now: Timestamp) {
    let lagging = d
        .status
        .targets
        .iter()
        .filter(|t| t.platform == Some(Platform::Windows) && t.state == TargetState::Ready)
        .filter(|t| t.account_expires_at.as_ref().is_some_and(|at| at.0 < expires));
    let (due, waiting): (Vec<&TargetStatus>, Vec<&TargetStatus>) =
        lagging.partition(|t| t.retry_at.as_ref().is_none_or(|at| at.0 <= now));
    let next_retry = waiting
        .iter()
        .filter_map(|t| t.retry_at.as_ref())
        .map(|at| elapsed(now, at.0).max(Duration::from_millis(100)))
        .min();
    let due: Vec<String> = due.iter().map(|t| t.instance_id.clone()).collect();
    if let Some(wait) = next_retry {
        d.requeue_after = d.requeue_after.map(|after| after.min(wait));
    }
    if due.is_empty() {
        return;
    }
    let first = d.commands.len();
    push_batches(d, Purpose::Extend, Platform::Windows, &due);
    for command in &mut d.commands[first..] {
        command.account_expires_at = Some(expires);
    }
}

/// Records on a target that its extension command could not be sent: said, and retried after
/// [`RETRY`].
pub(super) fn not_moved(target: &mut TargetStatus, expires: Timestamp, now: Timestamp, message: &str) {
    target.message = format!("the account's own expiry was not moved to {expires}, retrying: {message}");
    target.retry_at = Some(Time(add(now, RETRY)));
}

/// Records on a target the expiry a sent command gives its account.
pub(super) fn record_sent(target: &mut TargetStatus, at: Option<Timestamp>) {
    if let Some(at) = at {
        target.account_expires_at = Some(Time(at));
    }
}

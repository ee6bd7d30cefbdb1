//! Revocation: every reached target is cleaned up, whatever happened, with retries that back off,
//! a report once they keep failing, and one more revoke where a provisioning command whose outcome
//! was never recorded could still run.

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::{
    Phase,
    access_request::{Platform, TargetState, TargetStatus},
    common::Time,
};

use super::{
    Inputs, Invocation, Purpose, Transition, reached,
    step::{event, finish, overdue, push_by_platform},
};
use crate::{
    logbook::LogAction,
    time::{add, elapsed},
};

/// How long a provisioning command whose send was recorded but whose outcome was not may still run:
/// SSM's delivery timeout (passport sets 30 s), the scripts' wait for the host lock (60 s), and slack.
pub const UNCONFIRMED_GRACE: Duration = Duration::from_secs(120);
/// Failed revoke attempts after which the request reports that revocation is stuck.
pub const STUCK_AFTER: u32 = 5;
/// The first retry after a failed revoke, doubled with each failure, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(10);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The wait before the next revoke after `failures` failed ones.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// Records a failed revoke attempt on `target`: counted, retried after the backoff.
pub fn failed_attempt(target: &mut TargetStatus, now: Timestamp, why: &str) {
    target.state = TargetState::Removing;
    target.command_id = None;
    target.revoke_failures += 1;
    let retry = add(now, backoff(target.revoke_failures));
    target.retry_at = Some(Time(retry));
    target.message = format!(
        "revocation failed ({} time(s)), retrying at {retry}: {why}",
        target.revoke_failures
    );
}

pub(super) fn start(input: &Inputs<'_>, d: &mut Transition, outcome: Phase) {
    d.status.phase = Phase::Revoking;
    d.status.revocation_started_at.get_or_insert(Time(input.now));
    d.status.outcome = Some(outcome);
    // A Ready target's retry_at only ever delays an extension's retry: never the revoke.
    for target in &mut d.status.targets {
        if target.state == TargetState::Ready {
            target.retry_at = None;
        }
    }
    revoking(input, d);
}

pub(super) fn revoking(input: &Inputs<'_>, d: &mut Transition) {
    let now = input.now;
    let stuck_before = stuck(&d.status.targets).count();
    let mut send: Vec<(Platform, String)> = Vec::new();
    for target in &mut d.status.targets {
        if observe(target, input) == Next::Send && target.retry_at.as_ref().is_none_or(|t| t.0 <= now) {
            target.state = TargetState::Removing;
            target.command_id = None;
            target.retry_at = None;
            send.push((
                target.platform.unwrap_or(Platform::Linux),
                target.instance_id.clone(),
            ));
        }
    }
    push_by_platform(d, Purpose::Revoke, &send);
    let stuck_now: Vec<String> = stuck(&d.status.targets).map(|t| t.instance_id.clone()).collect();
    if stuck_now.len() > stuck_before {
        let message = format!("revocation is stuck on {}: {}", stuck_now.join(", "), ADMIN_HINT);
        event(d, LogAction::RevocationStuck, message, true);
    }
    if d.status.targets.iter().all(|t| t.state == TargetState::Removed) {
        if stuck_before > 0 {
            event(
                d,
                LogAction::RevocationResumed,
                "revocation went through on every target".into(),
                false,
            );
        }
        let outcome = d.status.outcome.unwrap_or(Phase::Completed);
        let (action, message) = match outcome {
            Phase::Expired => (
                LogAction::Expired,
                "expired; access revoked on every target".to_owned(),
            ),
            Phase::Denied => (
                LogAction::Revoked,
                format!("{}; access revoked on every target", d.status.message.trim()),
            ),
            // Why it failed (said when revocation started) stays the first thing a reader sees.
            Phase::Failed => (
                LogAction::Failed,
                match d.status.message.trim() {
                    "" => "failed; access revoked on every target it reached".to_owned(),
                    why => format!("{why}; revoked on every target it reached"),
                },
            ),
            _ if input.deleting => (
                LogAction::Revoked,
                "deleted; access revoked on every target".to_owned(),
            ),
            _ => (
                LogAction::Completed,
                "completed; access revoked on every target".to_owned(),
            ),
        };
        finish(d, outcome, now, action, &message);
        return;
    }
    let started = d.status.revocation_started_at.as_ref().map_or(now, |t| t.0);
    let poll = super::poll_interval(elapsed(started, now));
    d.requeue_after = Some(next_look(&d.status.targets, !d.commands.is_empty(), poll, now));
}

/// What an administrator does about a stuck revocation.
pub const ADMIN_HINT: &str = "check that the instance runs and its SSM agent is online; if the instance is gone for \
     good, its users went with it: remove the finalizer passport.dev/revoke from the AccessRequest";

/// Targets whose revocation keeps failing.
pub fn stuck(targets: &[TargetStatus]) -> impl Iterator<Item = &TargetStatus> {
    targets
        .iter()
        .filter(|t| t.state != TargetState::Removed && t.revoke_failures >= STUCK_AFTER)
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    Wait,
    Send,
}

/// Folds what was observed into one target; says whether a revoke should go out.
fn observe(target: &mut TargetStatus, input: &Inputs<'_>) -> Next {
    let now = input.now;
    let observed = input.observations.invocations.get(&target.instance_id);
    if let Some(why) = input.observations.gone.get(&target.instance_id) {
        if target.state != TargetState::Removed {
            // The instance and every user on it are gone; nothing is left to revoke or to wait for.
            target.state = TargetState::Removed;
            target.command_id = None;
            target.retry_at = None;
            target.unconfirmed_since = None;
            target.message = format!("{why}: its users went with it");
        }
        return Next::Wait;
    }
    match target.state {
        // A provisioning command still running could recreate the user after a revoke: wait for it.
        TargetState::Provisioning if target.command_id.is_some() => match observed {
            Some(Invocation::Running) | None if !overdue(target, now) => Next::Wait,
            _ => {
                target.retry_at = None;
                Next::Send
            }
        },
        TargetState::Removing => match observed {
            Some(Invocation::Succeeded { .. }) => {
                confirm_removed(target, now);
                Next::Wait
            }
            Some(Invocation::Failed { message }) => {
                failed_attempt(target, now, &format!("revoke command failed: {message}"));
                Next::Wait
            }
            Some(Invocation::Running) | None if overdue(target, now) => {
                failed_attempt(target, now, "the revoke command gave no outcome in time");
                Next::Wait
            }
            Some(Invocation::Running) => Next::Wait,
            None if target.command_id.is_some() => Next::Wait,
            None => Next::Send,
        },
        TargetState::Removed => Next::Wait,
        _ if !reached(target) => {
            target.state = TargetState::Removed;
            Next::Wait
        }
        _ => Next::Send,
    }
}

/// A revoke went through. Removed for good, unless a provisioning command of unknown outcome may
/// still run: then once more when it no longer can.
fn confirm_removed(target: &mut TargetStatus, now: Timestamp) {
    target.command_id = None;
    let late = target
        .unconfirmed_since
        .as_ref()
        .map(|t| add(t.0, UNCONFIRMED_GRACE));
    match late {
        Some(late) if now < late => {
            target.retry_at = Some(Time(late));
            target.message = format!(
                "revoked; revoking once more at {late}, when a provisioning command whose outcome was never \
                 recorded can no longer run"
            );
        }
        _ => {
            target.state = TargetState::Removed;
            target.unconfirmed_since = None;
            target.retry_at = None;
            target.message.clear();
        }
    }
}

/// When to look again: soon while commands run, else at the earliest retry.
fn next_look(targets: &[TargetStatus], sending: bool, poll: Duration, now: Timestamp) -> Duration {
    let in_flight = targets.iter().any(|t| {
        t.command_id.is_some() && matches!(t.state, TargetState::Removing | TargetState::Provisioning)
    });
    if sending || in_flight {
        return poll;
    }
    targets
        .iter()
        .filter(|t| t.state != TargetState::Removed)
        .filter_map(|t| t.retry_at.as_ref().map(|r| elapsed(now, r.0)))
        .min()
        .unwrap_or(poll)
        .max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_five_minutes() {
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_RETRY);
    }
}

//! One target while it is provisioned: what was observed, the intent recorded before a send, and a
//! lost send found again.

use jiff::Timestamp;
use passport_crds::{
    access_request::{Platform, TargetState, TargetStatus},
    common::Time,
};

use super::{COMMAND_LIFETIME, Inputs, Invocation, PROVISION_TIMEOUT, lost_send};
use crate::time::add;

/// Whether the command recorded on `target` is past the time SSM could still run it.
pub(super) fn overdue(target: &TargetStatus, now: Timestamp) -> bool {
    target.command_id.is_some() && target.retry_at.as_ref().is_some_and(|t| t.0 <= now)
}

/// Provisioning commands started for one target before it is given up.
pub const MAX_PROVISION_ATTEMPTS: u32 = 3;

/// Marks a target whose provisioning command is about to be sent, before it is sent: the status
/// written with this mark is what makes the target count as reached, so a crash between the send
/// and recording its command id can never leave a user nobody revokes. A target whose earlier send
/// was recorded but never confirmed is sent again as a new attempt. Returns the platform to send to.
pub(super) fn record_intent(target: &mut TargetStatus, now: Timestamp) -> Option<Platform> {
    let unconfirmed = target.state == TargetState::Provisioning && target.command_id.is_none();
    if !(target.state == TargetState::Pending || unconfirmed) {
        return None;
    }
    let platform = target.platform?;
    if target.attempts >= MAX_PROVISION_ATTEMPTS {
        target.state = TargetState::Failed;
        target.message = format!(
            "no provisioning command could be confirmed in {MAX_PROVISION_ATTEMPTS} attempts: {}",
            target.message
        );
        return None;
    }
    target.state = TargetState::Provisioning;
    target.command_id = None;
    target.attempts += 1;
    // From the latest send: an earlier one can only run earlier.
    target.unconfirmed_since = Some(Time(now));
    Some(platform)
}

/// SSM holds the command of a send whose answer was lost: follow it like any recorded send.
fn adopt(target: &mut TargetStatus, command_id: &str, now: Timestamp) {
    target.state = TargetState::Provisioning;
    target.command_id = Some(command_id.to_owned());
    target.message.clear();
    target.retry_at = Some(Time(add(
        target.unconfirmed_since.as_ref().map_or(now, |t| t.0),
        COMMAND_LIFETIME,
    )));
    if target.attempts <= 1 {
        target.unconfirmed_since = None;
    }
}

/// Applies what was observed about one target while provisioning.
pub(super) fn observe_provisioning(target: &mut TargetStatus, input: &Inputs<'_>, timed_out: bool) {
    if let Some(error) = input.observations.errors.get(&target.instance_id) {
        target.message = format!("could not check the instance, retrying: {error}");
    }
    if let Some(Some(command_id)) = input.observations.lost_sends.get(&target.instance_id)
        && lost_send(target)
    {
        adopt(target, command_id, input.now);
    }
    let id = target.instance_id.as_str();
    match target.state {
        TargetState::Pending => match input.observations.managed.get(id) {
            Some(Some(platform)) => target.platform = Some(*platform),
            Some(None) => {
                target.state = TargetState::Failed;
                target.message = format!(
                    "instance {id} is not managed by SSM (no online SSM agent in this account and region); \
                     check that it runs, has the SSM agent and an instance profile allowing SSM"
                );
            }
            None => {}
        },
        TargetState::Provisioning => match input.observations.invocations.get(id) {
            Some(Invocation::Succeeded { stdout }) => {
                target.state = TargetState::Ready;
                target.message.clear();
                target.retry_at = None;
                target.host_keys = crate::scripts::parse_host_keys(stdout);
                target.username = crate::scripts::windows_secret::reported_user(stdout);
            }
            Some(Invocation::Failed { message }) => {
                target.state = TargetState::Failed;
                target.retry_at = None;
                target.message = format!("provisioning command failed: {message}");
            }
            Some(Invocation::Running) | None if overdue(target, input.now) => {
                target.state = TargetState::Failed;
                target.message = format!(
                    "provisioning command {} gave no outcome in time: it can no longer run",
                    target.command_id.as_deref().unwrap_or_default()
                );
            }
            Some(Invocation::Running) | None => {}
        },
        _ => {}
    }
    // A command SSM accepted is left to SSM's own delivery and execution timeouts: revoking while it
    // may still be delivered could let it recreate the user afterwards.
    if timed_out && target.state == TargetState::Pending {
        target.state = TargetState::Failed;
        target.message = format!(
            "not provisioned within {}s: {}",
            PROVISION_TIMEOUT.as_secs(),
            target.message
        );
    }
}

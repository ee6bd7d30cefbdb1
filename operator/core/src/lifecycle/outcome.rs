//! Folding what happened when an action was carried out back into the status.

use passport_crds::access_request::{AccessRequestStatus, TargetState};

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::common::Time;

use super::{
    Purpose, SsmCommand,
    extension::{not_moved, record_sent},
    revoke::failed_attempt,
};
use crate::time::add;

/// How long SSM may still run a command after it was sent: its delivery timeout (30 s, set on every
/// command), the scripts' execution timeout (300 s), and slack.
pub const COMMAND_LIFETIME: Duration = Duration::from_secs(360);

/// The result of sending one SSM command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    Sent { command: SsmCommand, command_id: String },
    NotSent { command: SsmCommand, error: SendError },
}

/// Why a command was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// SSM refused the instances (InvalidInstanceId): they are not managed, or not in this account.
    NotManaged(String),
    /// Anything worth retrying: throttling past the SDK's retries, network, credentials.
    Transient(String),
}

/// Records a command's outcome on the targets it named, at `now`.
pub fn apply_outcome(status: &mut AccessRequestStatus, outcome: &CommandOutcome, now: Timestamp) {
    let (command, result) = match outcome {
        CommandOutcome::Sent { command, command_id } => (command, Ok(command_id)),
        CommandOutcome::NotSent { command, error } => (command, Err(error)),
    };
    let provisioning = command.purpose == Purpose::Provision;
    for target in status
        .targets
        .iter_mut()
        .filter(|t| command.instance_ids.contains(&t.instance_id))
    {
        if command.purpose == Purpose::Extend {
            match result {
                Ok(_) => {
                    record_sent(target, command.account_expires_at);
                    target.message.clear();
                    target.retry_at = None;
                }
                Err(SendError::NotManaged(message) | SendError::Transient(message)) => {
                    let expires = command.account_expires_at.unwrap_or(now);
                    not_moved(target, expires, now, message);
                }
            }
            continue;
        }
        match (result, provisioning) {
            (Ok(command_id), _) => {
                record_sent(target, command.account_expires_at);
                target.command_id = Some(command_id.clone());
                target.state = if provisioning {
                    TargetState::Provisioning
                } else {
                    TargetState::Removing
                };
                target.message.clear();
                // Past this, SSM can no longer run the command: no outcome by then is an outcome.
                target.retry_at = Some(Time(add(now, COMMAND_LIFETIME)));
                // The only send so far is this recorded one: nothing unrecorded can run late.
                if provisioning && target.attempts <= 1 {
                    target.unconfirmed_since = None;
                }
            }
            (Err(SendError::NotManaged(message)), true) => {
                target.state = TargetState::Failed;
                target.message = format!("SSM refused the provisioning command: {message}");
                // Refused outright, so never run: unless an earlier attempt may have, nothing
                // reached the instance and there is nothing to revoke there.
                if target.attempts <= 1 {
                    target.attempts = 0;
                    target.unconfirmed_since = None;
                }
            }
            // Sent again on the next pass, as a new attempt. A failure to hear back is not proof
            // that SSM did not take the command: the target stays unconfirmed.
            (Err(SendError::Transient(message)), true) => {
                target.state = TargetState::Pending;
                target.message = format!("could not send the SSM command, retrying: {message}");
            }
            // Revocation never gives up (the user may still exist there), but backs off.
            (Err(SendError::NotManaged(message) | SendError::Transient(message)), false) => {
                failed_attempt(target, now, &format!("could not send the SSM command: {message}"));
            }
        }
    }
}

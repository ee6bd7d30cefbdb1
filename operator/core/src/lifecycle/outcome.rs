//! Folding what happened when an action was carried out back into the status.

use passport_crds::access_request::{AccessRequestStatus, TargetState};

use jiff::Timestamp;

use super::{Purpose, SsmCommand, revoke::failed_attempt};

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
        match (result, provisioning) {
            (Ok(command_id), _) => {
                target.command_id = Some(command_id.clone());
                target.state = if provisioning {
                    TargetState::Provisioning
                } else {
                    TargetState::Removing
                };
                target.message.clear();
            }
            (Err(SendError::NotManaged(message)), true) => {
                target.state = TargetState::Failed;
                target.message = format!("SSM refused the provisioning command: {message}");
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

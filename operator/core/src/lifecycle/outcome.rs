//! Folding what happened when an action was carried out back into the status.

use passport_crds::access_request::{AccessRequestStatus, TargetState};

use super::{Purpose, SsmCommand};

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

/// Records a command's outcome on the targets it named.
pub fn apply_outcome(status: &mut AccessRequestStatus, outcome: &CommandOutcome) {
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
        match result {
            Ok(command_id) => {
                target.command_id = Some(command_id.clone());
                target.state = if provisioning {
                    TargetState::Provisioning
                } else {
                    TargetState::Removing
                };
                target.message.clear();
            }
            Err(SendError::NotManaged(message)) if provisioning => {
                target.state = TargetState::Failed;
                target.message = format!("SSM refused the provisioning command: {message}");
            }
            Err(SendError::NotManaged(message) | SendError::Transient(message)) => {
                if !provisioning {
                    // Revocation never gives up: the user may still exist there.
                    target.state = TargetState::Removing;
                    target.command_id = None;
                }
                target.message = format!("could not send the SSM command, retrying: {message}");
            }
        }
    }
}

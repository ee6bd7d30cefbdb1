//! Folding what happened when an action was carried out back into the status.

use passport_crds::access_request::{AccessRequestStatus, TargetState};

use super::Action;

/// The result of sending one SSM command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    Sent { action: Action, command_id: String },
    NotSent { action: Action, error: SendError },
}

/// Why a command was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// SSM refused the instances (InvalidInstanceId): they are not managed, or not in this account.
    NotManaged(String),
    /// Anything worth retrying: throttling past the SDK's retries, network, credentials.
    Transient(String),
}

/// Records an action's outcome on the targets it named.
pub fn apply_outcome(status: &mut AccessRequestStatus, outcome: &ActionOutcome) {
    let (action, result) = match outcome {
        ActionOutcome::Sent { action, command_id } => (action, Ok(command_id)),
        ActionOutcome::NotSent { action, error } => (action, Err(error)),
    };
    let provisioning = matches!(action, Action::Provision { .. });
    for target in status
        .targets
        .iter_mut()
        .filter(|t| action.instance_ids().contains(&t.instance_id))
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

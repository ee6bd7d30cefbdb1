//! Following a Run Command on all its instances: one `ListCommandInvocations` for every instance's
//! state (so a 50-instance request costs one call per poll, not fifty, and stays clear of SSM's
//! throttling), then `GetCommandInvocation` only for the instances that just finished, for their
//! whole output (the list cuts it to 2,500 characters; the provisioning output carries host keys and
//! a sealed password). A command whose output nobody reads (a revoke) is fetched only when it failed,
//! for its error output.

use std::collections::BTreeMap;

use aws_sdk_ssm::{Client, error::ProvideErrorMetadata, types::CommandInvocationStatus};
use passport_core::lifecycle::Invocation;

use super::{AwsError, sdk::classify};

/// AWS truncates invocation output at 24000 characters; keep status messages short.
const MESSAGE_TAIL: usize = 500;

/// How the command is doing on each of `instance_ids`; one SSM has not listed yet is `Running`. A
/// failure to read one instance's outcome is that instance's alone. Without `output`, a success is
/// taken from the list alone.
pub async fn follow(
    ssm: &Client,
    command_id: &str,
    instance_ids: &[String],
    output: bool,
) -> Result<BTreeMap<String, Result<Invocation, AwsError>>, AwsError> {
    let mut states = BTreeMap::new();
    let mut pages = ssm
        .list_command_invocations()
        .command_id(command_id)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            // Right after SendCommand the command may not be visible yet.
            Err(err) if err.code() == Some("InvalidCommandId") => break,
            Err(err) => return Err(classify(err)),
        };
        for listed in page.command_invocations() {
            if let (Some(id), Some(status)) = (listed.instance_id(), listed.status()) {
                states.insert(id.to_owned(), status.clone());
            }
        }
    }
    let mut found = BTreeMap::new();
    for instance_id in instance_ids {
        let invocation = match states.get(instance_id) {
            Some(CommandInvocationStatus::Success) if !output => Ok(Invocation::Succeeded {
                stdout: String::new(),
            }),
            Some(status) if finished(status) => invocation(ssm, command_id, instance_id).await,
            Some(_) | None => Ok(Invocation::Running),
        };
        found.insert(instance_id.clone(), invocation);
    }
    Ok(found)
}

/// Only these are final: anything else (Cancelling, a status added later) is still running.
fn finished(status: &CommandInvocationStatus) -> bool {
    matches!(
        status,
        CommandInvocationStatus::Success
            | CommandInvocationStatus::Failed
            | CommandInvocationStatus::TimedOut
            | CommandInvocationStatus::Cancelled
    )
}

/// The whole outcome on one instance.
async fn invocation(ssm: &Client, command_id: &str, instance_id: &str) -> Result<Invocation, AwsError> {
    let result = ssm
        .get_command_invocation()
        .command_id(command_id)
        .instance_id(instance_id)
        .send()
        .await;
    let output = match result {
        Ok(output) => output,
        Err(err) if err.code() == Some("InvocationDoesNotExist") => return Ok(Invocation::Running),
        Err(err) => return Err(classify(err)),
    };
    Ok(match output.status() {
        Some(CommandInvocationStatus::Success) => Invocation::Succeeded {
            stdout: output.standard_output_content().unwrap_or_default().to_owned(),
        },
        Some(status) if finished(status) => {
            let stderr = output.standard_error_content().unwrap_or_default().trim();
            Invocation::Failed {
                message: format!(
                    "{} (exit code {}): {}",
                    output.status_details().unwrap_or(status.as_str()),
                    output.response_code(),
                    if stderr.is_empty() {
                        "no error output"
                    } else {
                        tail(stderr)
                    }
                ),
            }
        }
        _ => Invocation::Running,
    })
}

/// The last [`MESSAGE_TAIL`] characters of `text`.
fn tail(text: &str) -> &str {
    let skip = text.chars().count().saturating_sub(MESSAGE_TAIL);
    text.char_indices().nth(skip).map_or(text, |(at, _)| &text[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_characters_on_a_boundary() {
        assert_eq!(tail("short"), "short");
        let long = format!("{}é{}", "a".repeat(600), "b".repeat(499));
        assert_eq!(tail(&long), format!("é{}", "b".repeat(499)));
    }

    #[test]
    fn only_ended_invocations_are_fetched_in_full() {
        for running in [
            CommandInvocationStatus::Pending,
            CommandInvocationStatus::InProgress,
            CommandInvocationStatus::Delayed,
            CommandInvocationStatus::Cancelling,
        ] {
            assert!(!finished(&running));
        }
        for ended in [
            CommandInvocationStatus::Success,
            CommandInvocationStatus::Failed,
            CommandInvocationStatus::TimedOut,
            CommandInvocationStatus::Cancelled,
        ] {
            assert!(finished(&ended));
        }
    }
}

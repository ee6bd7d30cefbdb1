//! Carrying out the lifecycle's actions: building each script and sending it through SSM.

use passport_crds::{AccessRequest, access_request::Platform};

use super::{Context, Error};
use crate::{
    aws::{Account, AwsError, Command, Fleet},
    lifecycle::{Action, ActionOutcome, SendError},
    scripts::{
        LinuxProvision, WindowsProvision, linux_provision_script, linux_revoke_script,
        windows_provision_script, windows_revoke_script,
    },
    secrets,
};

/// What every command for one request shares.
pub struct Target<'a> {
    pub request: &'a AccessRequest,
    /// `namespace/name`, carried in the command comment so CloudTrail joins to the request.
    pub request_key: &'a str,
    pub username: &'a str,
    pub account: Option<&'a Account>,
}

/// Sends one action's command; a failure to send becomes an outcome, not an error, so the status says it.
pub async fn send<F: Fleet>(
    ctx: &Context<F>,
    target: &Target<'_>,
    action: &Action,
) -> Result<ActionOutcome, Error> {
    let Some(account) = target.account else {
        let error =
            SendError::Transient("the request's AwsAccount is not usable; see the Approved condition".into());
        return Ok(ActionOutcome::NotSent {
            action: action.clone(),
            error,
        });
    };
    let script = script(ctx, target, action).await?;
    let (purpose, verb) = match action {
        Action::Provision { .. } => ("provision", "grant"),
        Action::Revoke { .. } => ("revoke", "revoke"),
    };
    let comment = format!("passport {verb} {}", target.request_key);
    let command = Command {
        platform: action.platform(),
        instance_ids: action.instance_ids(),
        script: &script,
        comment: &comment,
    };
    let outcome = match ctx.fleet.send_command(account, command).await {
        Ok(command_id) => ActionOutcome::Sent {
            action: action.clone(),
            command_id,
        },
        Err(AwsError::InvalidInstance(message)) => ActionOutcome::NotSent {
            action: action.clone(),
            error: SendError::NotManaged(message),
        },
        Err(AwsError::Throttled(message) | AwsError::Other(message)) => ActionOutcome::NotSent {
            action: action.clone(),
            error: SendError::Transient(message),
        },
    };
    let result = if matches!(outcome, ActionOutcome::Sent { .. }) {
        "sent"
    } else {
        "not_sent"
    };
    ctx.metrics
        .ssm_commands
        .with_label_values(&[purpose, result])
        .inc();
    Ok(outcome)
}

async fn script<F: Fleet>(ctx: &Context<F>, target: &Target<'_>, action: &Action) -> Result<String, Error> {
    let username = target.username;
    Ok(match (action, action.platform()) {
        (Action::Provision { .. }, Platform::Linux) => {
            let keys = ctx.authority.ca.trusted_public_keys();
            linux_provision_script(&LinuxProvision {
                username,
                ca_public_keys: &keys,
                request: target.request_key,
            })?
        }
        (Action::Revoke { .. }, Platform::Linux) => linux_revoke_script(username)?,
        (Action::Provision { .. }, Platform::Windows) => {
            let uid = target
                .request
                .metadata
                .uid
                .as_deref()
                .ok_or(Error::MissingMetadata("uid"))?;
            let password = secrets::windows_password(ctx.client.clone(), &ctx.namespace, uid).await?;
            windows_provision_script(&WindowsProvision {
                username,
                password: &password,
                request: target.request_key,
                domain_controller: false,
            })?
        }
        (Action::Revoke { .. }, Platform::Windows) => windows_revoke_script(username, false)?,
    })
}

//! Carrying out the lifecycle's commands: building each script and sending it through SSM.

use jiff::Timestamp;
use kube::ResourceExt;
use passport_core::{
    account::Account,
    credentials::policy::role_session_prefix,
    lifecycle::{CommandOutcome, PROVISION_TIMEOUT, Purpose, SendError, SsmCommand, command_comment},
    scripts::{
        LinuxProvision, WindowsProvision, linux_provision_script, linux_revoke_script, windows_extend_script,
        windows_provision_script, windows_revoke_script,
    },
};
use passport_crds::{AccessRequest, access_request::Platform, duration::MAX_ACCESS};

use super::{Context, Error};
use crate::{
    aws::{AwsError, Fleet, RunCommand},
    cluster::windows_password,
};

/// What every command for one request shares.
pub struct Target<'a> {
    pub request: &'a AccessRequest,
    pub username: &'a str,
    pub account: Option<&'a Account>,
}

impl Target<'_> {
    /// `namespace/name`, carried in the command comment so CloudTrail joins to the request.
    fn key(&self) -> String {
        format!(
            "{}/{}",
            self.request.namespace().unwrap_or_default(),
            self.request.name_any()
        )
    }

    /// The comment of this request's commands of one purpose.
    pub fn comment(&self, purpose: Purpose) -> String {
        command_comment(
            purpose,
            self.request.uid().as_deref().unwrap_or_default(),
            &self.key(),
        )
    }
}

/// Sends one command. When SSM refuses a batch because of an instance in it (terminated,
/// deregistered, not in this account), each instance is sent its own command, so one bad instance
/// never holds back the others.
pub async fn send_isolated<F: Fleet>(
    ctx: &Context<F>,
    target: &Target<'_>,
    command: &SsmCommand,
) -> Result<Vec<CommandOutcome>, Error> {
    let outcome = send(ctx, target, command).await?;
    let refused = matches!(
        &outcome,
        CommandOutcome::NotSent {
            error: SendError::NotManaged(_),
            ..
        }
    );
    if !refused || command.instance_ids.len() < 2 {
        return Ok(vec![outcome]);
    }
    let mut outcomes = Vec::with_capacity(command.instance_ids.len());
    for instance_id in &command.instance_ids {
        let single = SsmCommand {
            instance_ids: vec![instance_id.clone()],
            ..command.clone()
        };
        outcomes.push(send(ctx, target, &single).await?);
    }
    Ok(outcomes)
}

/// Sends one command; a failure to send becomes an outcome, not an error, so the status says it.
async fn send<F: Fleet>(
    ctx: &Context<F>,
    target: &Target<'_>,
    command: &SsmCommand,
) -> Result<CommandOutcome, Error> {
    let not_sent = |error| CommandOutcome::NotSent {
        command: command.clone(),
        error,
    };
    let Some(account) = target.account else {
        let why = "the request has no AwsAccount to act through; see the Approved condition";
        return Ok(not_sent(SendError::Transient(why.into())));
    };
    if command.purpose == Purpose::Revoke {
        end_sessions(ctx, target, account, &command.instance_ids).await;
    }
    let key = target.key();
    let script = script(ctx, target, &key, command).await?;
    let comment = target.comment(command.purpose);
    let run = RunCommand {
        platform: command.platform,
        instance_ids: &command.instance_ids,
        script: &script,
        comment: &comment,
    };
    let outcome = match ctx.fleet.send_command(account, run).await {
        Ok(command_id) => CommandOutcome::Sent {
            command: command.clone(),
            command_id,
        },
        Err(AwsError::InvalidInstance(message)) => not_sent(SendError::NotManaged(message)),
        Err(AwsError::Throttled(message) | AwsError::Other(message)) => {
            not_sent(SendError::Transient(message))
        }
    };
    let result = match outcome {
        CommandOutcome::Sent { .. } => "sent",
        CommandOutcome::NotSent { .. } => "not_sent",
    };
    ctx.metrics
        .ssm_commands
        .with_label_values(&[command.purpose.as_str(), result])
        .inc();
    Ok(outcome)
}

/// Ends the request's open Session Manager sessions on the instances before their user is removed:
/// a port forward (RDP) would otherwise outlive the user. A failure is logged, not fatal: the revoke
/// script still ends the user's processes, and so every SSH session through any tunnel.
async fn end_sessions<F: Fleet>(
    ctx: &Context<F>,
    target: &Target<'_>,
    account: &Account,
    instance_ids: &[String],
) {
    let uid = target.request.uid().unwrap_or_default();
    let prefix = role_session_prefix(&uid);
    match ctx.fleet.terminate_sessions(account, instance_ids, &prefix).await {
        Ok(ended) if ended.is_empty() => {}
        Ok(ended) => {
            tracing::info!(?instance_ids, sessions = ?ended, "ended the request's Session Manager sessions")
        }
        Err(err) => {
            tracing::warn!(?instance_ids, %err, "could not end the request's Session Manager sessions")
        }
    }
}

async fn script<F: Fleet>(
    ctx: &Context<F>,
    target: &Target<'_>,
    key: &str,
    command: &SsmCommand,
) -> Result<String, Error> {
    let username = target.username;
    // The request's UID: the instance records which requests hold the user, and removes it with the last.
    let holder = target.request.uid().ok_or(Error::MissingMetadata("uid"))?;
    let holder = holder.as_str();
    let expires_at = provision_expiry(target.request, Timestamp::now());
    Ok(match (command.purpose, command.platform) {
        (Purpose::Provision, Platform::Linux) => {
            let keys = ctx.authority.ca.trusted_public_keys();
            linux_provision_script(&LinuxProvision {
                username,
                ca_public_keys: &keys,
                request: key,
                holder,
                expires_at,
            })?
        }
        (Purpose::Revoke, Platform::Linux) => linux_revoke_script(username, holder)?,
        (Purpose::Provision, Platform::Windows) => {
            // No password in the script: a one-time key the instance encrypts the password it makes
            // to, stored before the command goes out (see cluster::windows_password).
            let password_key = windows_password::new_key(ctx.client.clone(), &ctx.namespace, holder).await?;
            windows_provision_script(&WindowsProvision {
                username,
                password_key: &password_key.public_key(),
                request: key,
                holder,
                // What the lifecycle chose: the approved access and no more (see lifecycle::extension).
                expires_at: command.account_expires_at.unwrap_or(expires_at),
            })?
        }
        (Purpose::Revoke, Platform::Windows) => windows_revoke_script(username, holder)?,
        (Purpose::Extend, Platform::Windows) => {
            let at = command
                .account_expires_at
                .ok_or_else(|| Error::Internal("an extension command without the expiry it sets".into()))?;
            windows_extend_script(username, holder, at)?
        }
        (Purpose::Extend, Platform::Linux) => {
            return Err(Error::Internal(
                "Linux users have no expiry of their own to extend".into(),
            ));
        }
    })
}

/// The backstop expiry of the Linux provisioning script (the request's principal line and the
/// account), should no revoke ever arrive: the latest `expiresAt` the request could still reach. An
/// extension may grow it up to [`MAX_ACCESS`] after activation, and sends Linux instances no command,
/// so it cannot be `expiresAt` itself without cutting extended access short. Certificates, the only
/// way in, never outlive `expiresAt` whatever this says. (A Windows account, whose password is the
/// way in, expires with the access itself and is moved on extension: see `lifecycle::extension`.)
fn provision_expiry(request: &AccessRequest, now: Timestamp) -> Timestamp {
    let activated = request
        .status
        .as_ref()
        .and_then(|s| s.activated_at.as_ref())
        .map(|t| t.0);
    let start = activated.unwrap_or_else(|| now.checked_add(PROVISION_TIMEOUT).unwrap_or(now));
    start.checked_add(MAX_ACCESS).unwrap_or(start)
}

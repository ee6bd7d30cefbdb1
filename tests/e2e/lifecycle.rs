//! The access-request lifecycle on real parts: the operator provisions a user on an OpenSSH instance
//! through SSM (moto), a certificate from the operator's CA logs in, and expiry, completion and
//! deletion revoke it, killing sessions that were open.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use kube::api::{DeleteParams, Patch, PatchParams};
use passport_crds::{
    AwsAccount, Phase,
    access_request::TargetState,
    conditions::{self, types::READY},
};
use passport_tests::{fixtures, instance::Instance, operator::OperatorProcess, ssh::SshClient, wait};

use crate::{
    E2e,
    scenario::{Scenario, on_instance, on_own_stack, on_shared_stack, target_message, username},
    test,
};

const PROVISION_TIMEOUT: Duration = Duration::from_secs(60);
const REVOKE_TIMEOUT: Duration = Duration::from_secs(60);

pub fn trials() -> Vec<E2e> {
    vec![
        on_instance(
            "lifecycle::expiry_revokes_and_kills_sessions",
            "expiry",
            |s, instance| Box::pin(end_of_access(s, instance, Ending::Expiry)),
        ),
        on_instance(
            "lifecycle::completion_revokes_at_once",
            "complete",
            |s, instance| Box::pin(end_of_access(s, instance, Ending::Completion)),
        ),
        on_instance(
            "lifecycle::deletion_revokes_before_the_object_goes",
            "delete",
            |s, instance| Box::pin(end_of_access(s, instance, Ending::Deletion)),
        ),
        // A stack of its own: this test kills the operator.
        on_own_stack(
            "lifecycle::restarted_operator_revokes_past_expiry",
            "restart",
            |s, instance| Box::pin(restart_past_expiry(s, instance)),
        ),
        on_instance(
            "lifecycle::aws_account_ready_once_role_assumed",
            "account",
            |s, _instance| Box::pin(account_ready(s)),
        ),
        test("lifecycle::missing_account_fails_and_says_so", |env| async move {
            let id = "i-0aaaaaaaaaaaaaaa1";
            let s = on_shared_stack(&env, "noacct", &["alice"], &[id]).await?;
            s.apply(
                &fixtures::request("r")
                    .namespace(&s.namespace)
                    .account("nope")
                    .targets([id]),
            )?;
            let failed = s.wait_phase("r", Phase::Failed, PROVISION_TIMEOUT).await?;
            let message = failed.status.map(|st| st.message).unwrap_or_default();
            ensure!(
                message.contains("AwsAccount \"nope\" does not exist"),
                "status.message: {message}"
            );
            let notes = passport_tests::kubectl::run(
                &s.plane.admin_kubeconfig(),
                &[
                    "get",
                    "events.events.k8s.io",
                    "-n",
                    &s.namespace,
                    "-o",
                    "jsonpath={.items[*].note}",
                ],
                None,
            )?
            .ok()?
            .stdout;
            ensure!(
                notes.contains("AwsAccount \"nope\" does not exist"),
                "events: {notes}"
            );
            Ok(())
        }),
        test(
            "lifecycle::unmanaged_instance_fails_and_says_so",
            |env| async move {
                let id = "i-0bbbbbbbbbbbbbbb2"; // no SSM agent registered for it
                let s = on_shared_stack(&env, "unmanaged", &["alice"], &[id]).await?;
                s.request("r", "alice", "1h", &[id])?;
                let failed = s.wait_phase("r", Phase::Failed, PROVISION_TIMEOUT).await?;
                let message = target_message(&failed);
                ensure!(message.contains("not managed by SSM"), "{message}");
                Ok(())
            },
        ),
        // A stack of its own: injected throttles would hit other tests' commands too.
        on_own_stack(
            "lifecycle::throttling_is_retried_and_reported",
            "throttle",
            |s, instance| Box::pin(throttling(s, instance)),
        ),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Expiry,
    Completion,
    Deletion,
}

async fn end_of_access(s: &Scenario<'_>, instance: &Instance, ending: Ending) -> Result<()> {
    let duration = if ending == Ending::Expiry { "1m" } else { "1h" };
    s.request("r", "alice", duration, &[instance.id()])?;
    let active = s.wait_phase("r", Phase::Active, PROVISION_TIMEOUT).await?;
    let user = username(&active)?;
    let status = active.status.clone().unwrap_or_default();
    ensure!(status.targets[0].state == TargetState::Ready, "{status:?}");
    ensure!(
        !status.targets[0].host_keys.is_empty(),
        "no host keys reported: {status:?}"
    );
    instance.exec(&["id", &user]).await?.ok()?;

    let ca = s.ca_private_key().await?;
    let client = SshClient::new(instance, &ca, &active, "-1m:+10m").await?;
    let (ok, stdout, stderr) = client.run("whoami").await?;
    ensure!(
        ok && stdout.trim() == user,
        "certificate login failed: {stderr}\n{}",
        instance.log_tail()
    );
    let mut held = client.hold_open()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(held.try_wait()?.is_none(), "the held-open session ended early");

    match ending {
        Ending::Expiry => {}
        Ending::Completion => {
            extend_moves_expiry(s, &active).await?;
            let patch = serde_json::json!({ "spec": { "completed": true } });
            s.requests
                .patch("r", &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ending::Deletion => {
            s.requests.delete("r", &DeleteParams::default()).await?;
        }
    }
    let wait = if ending == Ending::Expiry {
        Duration::from_secs(60) + REVOKE_TIMEOUT
    } else {
        REVOKE_TIMEOUT
    };
    match ending {
        Ending::Expiry => drop(s.wait_phase("r", Phase::Expired, wait).await?),
        Ending::Completion => drop(s.wait_phase("r", Phase::Completed, wait).await?),
        Ending::Deletion => s.wait_gone("r", wait).await?,
    }
    let session = tokio::time::timeout(Duration::from_secs(10), held.wait()).await;
    ensure!(session.is_ok(), "the held-open SSH session survived revocation");
    let gone = instance.exec(&["id", &user]).await?;
    ensure!(!gone.success(), "user {user} still exists after revocation");
    let (ok, _, _) = client.run("whoami").await?;
    ensure!(!ok, "a new login succeeded after revocation");

    let scripts: Vec<String> = s
        .emulator
        .commands()
        .await?
        .iter()
        .filter(|c| c.instance_ids.contains(&instance.id().to_owned()))
        .map(|c| c.comment.clone())
        .collect();
    ensure!(
        scripts.iter().any(|c| c.contains(&format!("{}/r", s.namespace))),
        "command comments do not name the request: {scripts:?}"
    );
    Ok(())
}

async fn restart_past_expiry(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    s.request("r", "alice", "1m", &[instance.id()])?;
    let active = s.wait_phase("r", Phase::Active, PROVISION_TIMEOUT).await?;
    let user = username(&active)?;
    let expires = active
        .status
        .as_ref()
        .and_then(|s| s.expires_at.clone())
        .map(|t| t.0);
    s.operator.kill();
    let expires = expires.ok_or_else(|| anyhow::anyhow!("no expiresAt"))?;
    let wait = expires.duration_since(jiff::Timestamp::now());
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default() + Duration::from_secs(5)).await;
    ensure!(
        instance.exec(&["id", &user]).await?.success(),
        "the user went while the operator was down"
    );

    let restarted = OperatorProcess::start(s.plane, &s.emulator.env_vars())?;
    let started = Instant::now();
    let expired = s
        .with_operator(&restarted)
        .wait_phase("r", Phase::Expired, REVOKE_TIMEOUT)
        .await?;
    let took = started.elapsed();
    ensure!(took < Duration::from_secs(30), "revoked {took:?} after restart");
    ensure!(
        !instance.exec(&["id", &user]).await?.success(),
        "user still present: {expired:?}"
    );
    eprintln!("restart: revoked {took:?} after the operator came back past expiresAt");
    Ok(())
}

async fn throttling(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    // More throttles than the SDK retries: the operator must say so, keep retrying, and get through.
    s.emulator.inject_throttling("SendCommand", 8).await?;
    s.request("r", "alice", "1h", &[instance.id()])?;
    let throttled = s
        .wait_for("r", "reporting throttling", PROVISION_TIMEOUT, |r| {
            target_message(r).contains("ThrottlingException")
        })
        .await?;
    ensure!(
        throttled
            .status
            .as_ref()
            .is_some_and(|st| st.phase == Phase::Provisioning),
        "{throttled:?}"
    );
    s.wait_phase("r", Phase::Active, PROVISION_TIMEOUT).await?;
    ensure!(
        s.emulator.throttled_count().await? >= 8,
        "fewer throttles served than injected"
    );
    Ok(())
}

/// Growing spec.duration moves expiresAt by as much, and the logbook says so.
async fn extend_moves_expiry(s: &Scenario<'_>, active: &passport_crds::AccessRequest) -> Result<()> {
    let before = active
        .status
        .as_ref()
        .and_then(|st| st.expires_at.clone())
        .map(|t| t.0);
    let patch = serde_json::json!({ "spec": { "duration": "2h" } });
    s.requests
        .patch("r", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let moved = s
        .wait_for("r", "extended", Duration::from_secs(30), |r| {
            r.status
                .as_ref()
                .and_then(|st| st.expires_at.clone())
                .map(|t| t.0)
                != before
        })
        .await?;
    let after = moved.status.and_then(|st| st.expires_at).map(|t| t.0);
    let (Some(before), Some(after)) = (before, after) else {
        anyhow::bail!("no expiresAt")
    };
    ensure!(
        after.duration_since(before) == jiff::SignedDuration::from_hours(1),
        "{before} → {after}"
    );
    Ok(())
}

/// The AwsAccount is Ready once its role was assumed, with the external id its trust policy wants.
async fn account_ready(s: &Scenario<'_>) -> Result<()> {
    let accounts: kube::Api<AwsAccount> = kube::Api::all(s.admin.clone());
    let ready = |account: Option<&AwsAccount>| {
        account
            .and_then(|a| a.status.as_ref())
            .is_some_and(|st| conditions::is_true(&st.conditions, READY))
    };
    if let Err(err) = wait::object(&accounts, &s.account, Duration::from_secs(30), ready).await {
        let status = accounts.get_opt(&s.account).await?.and_then(|a| a.status);
        anyhow::bail!("AwsAccount {} not Ready ({err:#}): {status:?}", s.account);
    }
    let roles = s.emulator.assumed_roles().await?;
    let external_id = format!("e2e-{}", s.namespace);
    ensure!(
        roles
            .iter()
            .any(|r| r["RoleArn"] == "arn:aws:iam::123456789012:role/passport-e2e"
                && r["ExternalId"] == external_id.as_str()),
        "no AssumeRole with ExternalId {external_id}: {roles:?}"
    );
    Ok(())
}

//! Access always ends, case by case: whatever happens around a request (a storm of edits, an
//! unreachable instance, a lost AwsAccount, a lost CA Secret, a second holder of the same user, a
//! crash between sending a command and recording it), the user is gone from the instance at the end
//! and the request's status says why.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use passport_crds::{AccessRequest, AwsAccount, Phase, access_request::TargetState};
use passport_tests::{instance::Instance, wait::eventually};

use crate::{
    E2e,
    crash::{CrashStack, no_passport_user_left, provisioning_commands},
    scenario::{Scenario, on_instance, on_shared_stack, online_instance, target_message, username},
    test,
};

mod terminated;

const PROVISION_TIMEOUT: Duration = Duration::from_secs(90);
const REVOKE_TIMEOUT: Duration = Duration::from_secs(90);

pub fn trials() -> Vec<E2e> {
    vec![
        on_instance(
            "revocation::label_storm_sends_no_more_than_recorded_attempts",
            "storm",
            |s, instance| Box::pin(label_storm(s, instance)),
        ),
        test(
            "revocation::unreachable_instance_fails_alone_and_does_not_block",
            |env| async move {
                let emulator = env.emulator().await?;
                let (a, b, bad) = tokio::try_join!(
                    online_instance(emulator),
                    online_instance(emulator),
                    online_instance(emulator)
                )?;
                let ids = [a.id(), b.id(), bad.id()];
                let s = on_shared_stack(&env, "unreachable", &["alice"], &ids).await?;
                unreachable_instance(&s, [&a, &b], &bad).await
            },
        ),
        on_instance(
            "revocation::deleted_aws_account_revokes_through_the_pinned_role",
            "acctgone",
            |s, instance| Box::pin(account_lost(s, instance, AccountLoss::Deleted)),
        ),
        on_instance(
            "revocation::namespace_no_longer_allowed_revokes",
            "acctclosed",
            |s, instance| Box::pin(account_lost(s, instance, AccountLoss::NamespaceRemoved)),
        ),
        on_instance(
            "revocation::shared_user_stays_while_held_and_goes_after_the_last",
            "holders",
            |s, instance| Box::pin(two_holders(s, instance)),
        ),
        test(
            "revocation::terminated_instance_is_removed_and_does_not_block",
            terminated::terminated_instance,
        ),
        test(
            "revocation::lost_ca_secret_still_revokes_the_pinned_user",
            |_env| async move {
                let stack = CrashStack::start().await?;
                let instance = online_instance(&stack.emulator).await?;
                let s = stack.scenario("lostca", &["alice"], &[instance.id()]).await?;
                lost_ca_secret(&stack, &s, &instance).await
            },
        ),
        test(
            "revocation::killed_between_send_and_record_still_ends_clean",
            |_env| async move {
                let stack = CrashStack::start().await?;
                let instance = online_instance(&stack.emulator).await?;
                let s = stack.scenario("sendkill", &["alice"], &[instance.id()]).await?;
                killed_after_send(&stack, &s, &instance).await
            },
        ),
    ]
}

/// The requester patches a label every ~20 ms from before approval until after completion: every
/// patch is an event the operator reconciles, and none of them may make it send a provisioning
/// command it did not record as an attempt.
async fn label_storm(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    s.bind("passport-requester", "User", "alice")?;
    let alice: Api<AccessRequest> = Api::namespaced(s.plane.user_client("alice").await?, &s.namespace);
    s.request("r", "alice", "1h", &[instance.id()])?;
    let stop = Arc::new(AtomicBool::new(false));
    let patches = Arc::new(AtomicU32::new(0));
    let storm = {
        let (alice, stop, patches) = (alice.clone(), stop.clone(), patches.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                i += 1;
                let patch = serde_json::json!({ "metadata": { "labels": { "storm": i.to_string() } } });
                alice
                    .patch("r", &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                patches.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        })
    };
    let outcome = async {
        let active = s.wait_phase("r", Phase::Active, PROVISION_TIMEOUT).await?;
        let user = username(&active)?;
        instance.exec(&["id", &user]).await?.ok()?;
        tokio::time::sleep(Duration::from_secs(2)).await; // storm on while Active
        let complete = serde_json::json!({ "spec": { "completed": true } });
        alice
            .patch("r", &PatchParams::default(), &Patch::Merge(&complete))
            .await?;
        let done = s.wait_phase("r", Phase::Completed, REVOKE_TIMEOUT).await?;
        anyhow::Ok((user, done))
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    storm.await??;
    let (user, done) = outcome?;
    let uid = done.metadata.uid.clone().context("no uid")?;
    let attempts = done
        .status
        .as_ref()
        .and_then(|st| st.targets.first())
        .map(|t| t.attempts)
        .unwrap_or_default();
    let sent = provisioning_commands(s.emulator, &uid, instance.id()).await?;
    ensure!(
        (1..=attempts).contains(&(sent as u32)),
        "{sent} provisioning commands for {} recorded attempts",
        attempts
    );
    ensure!(
        !instance.exec(&["id", &user]).await?.success(),
        "user {user} still present"
    );
    no_passport_user_left(instance).await?;
    eprintln!(
        "storm: {} label patches across approval and completion; {sent} provisioning command(s), {attempts} attempt(s) recorded",
        patches.load(Ordering::Relaxed)
    );
    Ok(())
}

/// One of three instances is listed by SSM but refuses commands: the operator sends the other two
/// their own batch, and the request ends (Failed, naming the instance) with nothing left anywhere.
async fn unreachable_instance(s: &Scenario<'_>, good: [&Instance; 2], bad: &Instance) -> Result<()> {
    s.emulator.refuse_commands(bad.id()).await?;
    s.request("r", "alice", "1h", &[good[0].id(), good[1].id(), bad.id()])?;
    let good_ids = [good[0].id(), good[1].id()];
    // The two good targets are provisioned and, the request having failed, revoked.
    let revoked = s
        .wait_for(
            "r",
            "revoked on the reachable targets",
            PROVISION_TIMEOUT + REVOKE_TIMEOUT,
            |r| {
                r.status.as_ref().is_some_and(|st| {
                    (st.outcome.is_some() || st.phase.is_terminal())
                        && st
                            .targets
                            .iter()
                            .filter(|t| good_ids.contains(&t.instance_id.as_str()))
                            .all(|t| t.state == TargetState::Removed)
                })
            },
        )
        .await?;
    let user = username(&revoked)?;
    let uid = revoked.metadata.uid.clone().context("no uid")?;
    let commands = s.emulator.commands().await?;
    for instance in good {
        // Provisioned in a batch without the bad instance, and revoked.
        let provisioned = commands.iter().any(|c| {
            c.is_provisioning()
                && c.instance_ids.contains(&instance.id().to_owned())
                && !c.instance_ids.contains(&bad.id().to_owned())
                && c.assignment("PASSPORT_HOLDER").as_deref() == Some(uid.as_str())
        });
        // Its own command, without the bad instance (the emulator's record of the invocation's
        // status may lag; the user's absence below is what counts).
        ensure!(
            provisioned,
            "{} was never provisioned in a batch of its own",
            instance.id()
        );
        let revoked = commands.iter().any(|c| {
            !c.is_provisioning()
                && c.instance_ids.contains(&instance.id().to_owned())
                && c.assignment("PASSPORT_HOLDER").as_deref() == Some(uid.as_str())
        });
        ensure!(revoked, "{} was never sent a revoke", instance.id());
        ensure!(
            !instance.exec(&["id", &user]).await?.success(),
            "user {user} still on {}",
            instance.id()
        );
        no_passport_user_left(instance).await?;
    }
    no_passport_user_left(bad).await?;
    // The bad target must not hold the request: SSM refused its only command, so nothing of this
    // request can be on it. The request ends Failed, saying why.
    let done = s
        .wait_for("r", "ended or stuck", REVOKE_TIMEOUT * 3, |r| {
            r.status.as_ref().is_some_and(|st| {
                st.phase.is_terminal()
                    || st
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "RevocationStuck" && c.status == "True")
            })
        })
        .await?;
    let status = done.status.clone().unwrap_or_default();
    ensure!(
        status.phase == Phase::Failed,
        "the unreachable target blocks the request ({:?}, never ends without an administrator) although SSM \
         refused its only provisioning command: {}",
        status.phase,
        target_message(&done)
    );
    let bad_target = status
        .targets
        .iter()
        .find(|t| t.instance_id == bad.id())
        .context("no status for the bad target")?;
    ensure!(
        bad_target.message.contains("InvalidInstanceId") || status.message.contains(bad.id()),
        "neither the bad target nor the request says why: {}; {}",
        target_message(&done),
        status.message
    );
    eprintln!("unreachable: {}", target_message(&done));
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccountLoss {
    Deleted,
    NamespaceRemoved,
}

/// The request's AwsAccount goes away (or stops allowing the namespace) while the request is Active:
/// it is revoked through the role pinned at approval and fails naming the account.
async fn account_lost(s: &Scenario<'_>, instance: &Instance, loss: AccountLoss) -> Result<()> {
    s.request("r", "alice", "1h", &[instance.id()])?;
    let active = s.wait_phase("r", Phase::Active, PROVISION_TIMEOUT).await?;
    let user = username(&active)?;
    let pinned = active
        .status
        .as_ref()
        .and_then(|st| st.account_role.clone())
        .context("no status.accountRole pinned at approval")?;
    instance.exec(&["id", &user]).await?.ok()?;
    let accounts: Api<AwsAccount> = Api::all(s.admin.clone());
    match loss {
        AccountLoss::Deleted => drop(accounts.delete(&s.account, &DeleteParams::default()).await?),
        AccountLoss::NamespaceRemoved => {
            let patch = serde_json::json!({ "spec": { "allowedNamespaces": ["somewhere-else"] } });
            accounts
                .patch(&s.account, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }
    let failed = s.wait_phase("r", Phase::Failed, REVOKE_TIMEOUT).await?;
    let status = failed.status.clone().unwrap_or_default();
    ensure!(
        status.targets.iter().all(|t| t.state == TargetState::Removed),
        "{}",
        target_message(&failed)
    );
    ensure!(
        !instance.exec(&["id", &user]).await?.success(),
        "user {user} still present"
    );
    no_passport_user_left(instance).await?;
    // The revoke went through the pinned role.
    let uid = failed.metadata.uid.clone().context("no uid")?;
    let revoke = s
        .emulator
        .commands()
        .await?
        .into_iter()
        .rfind(|c| !c.is_provisioning() && c.assignment("PASSPORT_HOLDER").as_deref() == Some(uid.as_str()))
        .context("no revoke command recorded")?;
    ensure!(
        pinned.role_arn.contains(&format!(":{}:", revoke.account_id)),
        "revoke sent in account {} but the pinned role is {}",
        revoke.account_id,
        pinned.role_arn
    );
    if !status.message.contains(&s.account) {
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
        anyhow::bail!(
            "the final status.message does not name AwsAccount {}: {:?} (events: {notes})",
            s.account,
            status.message
        );
    }
    eprintln!("{loss:?}: {}", status.message);
    Ok(())
}

/// Two requests of one requester on one instance share the user: it stays while one holds it and
/// goes after the last; two ending in the same second leave nothing either.
async fn two_holders(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    s.request("r1", "alice", "1h", &[instance.id()])?;
    s.request("r2", "alice", "1h", &[instance.id()])?;
    let (a1, a2) = tokio::try_join!(
        s.wait_phase("r1", Phase::Active, PROVISION_TIMEOUT),
        s.wait_phase("r2", Phase::Active, PROVISION_TIMEOUT)
    )?;
    let user = username(&a1)?;
    ensure!(username(&a2)? == user, "one requester, two usernames");
    let marker = format!("/var/lib/passport/users/{user}");
    let holders = |text: &str| text.lines().filter(|l| l.starts_with("holder=")).count();

    complete(s, "r1").await?;
    s.wait_phase("r1", Phase::Completed, REVOKE_TIMEOUT).await?;
    instance.exec(&["id", &user]).await?.ok()?;
    let listed = instance.exec(&["cat", &marker]).await?.ok()?.stdout;
    let r2_uid = a2.metadata.uid.clone().context("no uid")?;
    ensure!(
        holders(&listed) == 1 && listed.contains(&r2_uid),
        "after r1 the marker should list r2 alone: {listed}"
    );

    // A third request joins; then r2 and r3 end in the same second.
    s.request("r3", "alice", "1h", &[instance.id()])?;
    s.wait_phase("r3", Phase::Active, PROVISION_TIMEOUT).await?;
    let listed = instance.exec(&["cat", &marker]).await?.ok()?.stdout;
    ensure!(holders(&listed) == 2, "r2 and r3 should hold: {listed}");
    tokio::try_join!(complete(s, "r2"), complete(s, "r3"))?;
    tokio::try_join!(
        s.wait_phase("r2", Phase::Completed, REVOKE_TIMEOUT),
        s.wait_phase("r3", Phase::Completed, REVOKE_TIMEOUT)
    )?;
    ensure!(
        !instance.exec(&["id", &user]).await?.success(),
        "user {user} still present after its last holder"
    );
    no_passport_user_left(instance).await?;
    Ok(())
}

async fn complete(s: &Scenario<'_>, name: &str) -> Result<()> {
    let patch = serde_json::json!({ "spec": { "completed": true } });
    s.requests
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
        .with_context(|| format!("completing {name}"))
}

/// The CA/username Secret is deleted and the operator restarted (it makes a new one): the request
/// still revokes the user pinned in its status, not one derived from the new Secret.
async fn lost_ca_secret(stack: &CrashStack, s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    s.request("r", "alice", "1h", &[instance.id()])?;
    let active = stack.wait_phase(s, "r", Phase::Active, PROVISION_TIMEOUT).await?;
    let user = username(&active)?;
    instance.exec(&["id", &user]).await?.ok()?;
    let secrets: Api<Secret> = Api::namespaced(s.admin.clone(), "passport-system");
    secrets
        .delete("passport-ssh-ca", &DeleteParams::default())
        .await?;
    stack.operator.crash_and_restart()?;
    complete(s, "r").await?;
    let done = stack.wait_phase(s, "r", Phase::Completed, REVOKE_TIMEOUT).await?;
    ensure!(
        username(&done)? == user,
        "status.username changed: {:?}",
        done.status
    );
    ensure!(
        !instance.exec(&["id", &user]).await?.success(),
        "user {user} still present after revocation"
    );
    no_passport_user_left(instance).await?;
    let uid = done.metadata.uid.clone().context("no uid")?;
    let revoked = s.emulator.commands().await?.into_iter().any(|c| {
        !c.is_provisioning()
            && c.assignment("PASSPORT_HOLDER").as_deref() == Some(uid.as_str())
            && c.assignment("PASSPORT_USER").as_deref() == Some(user.as_str())
    });
    ensure!(revoked, "no revoke named the pinned user {user}");
    // The operator made itself a new Secret.
    eventually(Duration::from_secs(30), || async {
        secrets.get("passport-ssh-ca").await.map(drop).map_err(Into::into)
    })
    .await?;
    Ok(())
}

/// The emulator kills the operator right after it records a SendCommand, before answering: once
/// after the provisioning send and once after the revoke send. Each restart finds a command it sent
/// but never recorded, and the request still ends with nothing left.
async fn killed_after_send(stack: &CrashStack, s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    let key = format!("{}/r", s.namespace);
    // The comment carries the request's UID too; its `namespace/name` is enough to pick it out.
    let grant_kill = stack.kill_after_send(1, &key).await?;
    s.request("r", "alice", "1h", &[instance.id()])?;
    let grant = stack.restart_when_fired(grant_kill).await?;
    let active = stack.wait_phase(s, "r", Phase::Active, PROVISION_TIMEOUT).await?;
    let user = username(&active)?;
    instance.exec(&["id", &user]).await?.ok()?;
    let attempts = active
        .status
        .as_ref()
        .map(|st| st.targets[0].attempts)
        .unwrap_or_default();
    // The restarted operator finds the lost send in SSM (by its comment) and follows it: no second
    // command, no second attempt.
    ensure!(attempts == 1, "attempts after a lost send: {attempts}");

    let revoke_kill = stack.kill_after_send(1, &key).await?;
    complete(s, "r").await?;
    let revoke = stack.restart_when_fired(revoke_kill).await?;
    // Had the lost send not been found, the last revoke would wait until it could no longer run
    // (UNCONFIRMED_GRACE, 120 s after it was sent): allow for that too.
    let grace = Duration::from_secs(120);
    let done = stack
        .wait_phase(s, "r", Phase::Completed, grace + REVOKE_TIMEOUT)
        .await?;
    ensure!(
        !instance.exec(&["id", &user]).await?.success(),
        "user {user} still present"
    );
    no_passport_user_left(instance).await?;
    let uid = done.metadata.uid.clone().context("no uid")?;
    let sent = provisioning_commands(&stack.emulator, &uid, instance.id()).await?;
    ensure!(
        sent as u32 <= attempts,
        "{sent} provisioning commands for {attempts} attempts"
    );
    eprintln!(
        "killed after send: grant {grant} and revoke {revoke} were never recorded by the operator that sent them; \
         {sent} provisioning commands, {attempts} attempts; {}",
        target_message(&done)
    );
    Ok(())
}

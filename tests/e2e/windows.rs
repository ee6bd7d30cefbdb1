//! Windows targets, with the operator's side real and the instance faked: PowerShell cannot run here,
//! so the agent's runner is `tests/aws/fake_windows.py`, which answers the provisioning script as the
//! real one does (the account, and a password it made encrypted to the script's one-time key).
//! What this proves: no password is in any SSM command or in the AccessRequest, the operator
//! decrypts and keeps the instance's own password, reports the account per target (a domain
//! controller's own domain account), moves the account's own expiry on extension, and forgets it all
//! when the request ends.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use passport_crds::Phase;
use passport_tests::{aws::Platform, wait::eventually};

use crate::{
    E2e, Env,
    scenario::{Scenario, on_shared_stack, target_message, username},
    test,
};

const TIMEOUT: Duration = Duration::from_secs(90);

pub fn trials() -> Vec<E2e> {
    vec![
        test("windows::password_made_on_the_instance_never_in_clear", |env| {
            windows(env, false)
        }),
        test("windows::domain_controller_gets_a_per_request_account", |env| {
            windows(env, true)
        }),
    ]
}

fn fake_runner() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("aws/fake_windows.py")
}

async fn windows(env: Arc<Env>, dc: bool) -> Result<()> {
    let emulator = env.emulator().await?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let instance = format!("i-0{:016x}", (nanos as u64) ^ u64::from(dc));
    let state = tempfile::tempdir()?;
    let runner = vec![
        "python3".to_owned(),
        fake_runner().display().to_string(),
        instance.clone(),
        state.path().display().to_string(),
        if dc { "dc" } else { "member" }.to_owned(),
    ];
    emulator
        .register_agent(&instance, Platform::Windows, Some(runner))
        .await?;
    let prefix = if dc { "windc" } else { "win" };
    let s = on_shared_stack(&env, prefix, &["alice"], &[instance.as_str()]).await?;
    s.request("rdp", "alice", "1h", &[instance.as_str()])?;
    let request = match s.wait_phase("rdp", Phase::Active, TIMEOUT).await {
        Ok(request) => request,
        Err(err) => {
            let now = s.requests.get("rdp").await?;
            return Err(err.context(format!("targets: {}", target_message(&now))));
        }
    };
    let uid = request.uid().context("no uid")?;
    let base = username(&request)?;
    let target = &request.status.as_ref().context("no status")?.targets[0];
    ensure!(
        target.platform == Some(passport_crds::access_request::Platform::Windows),
        "platform: {:?}",
        target.platform
    );
    // The account the instance set up (the fake names a controller's as ps/common.ps1 does).
    let expected_user = std::fs::read_to_string(state.path().join(format!("{instance}.user")))?;
    if dc {
        let suffix = expected_user
            .strip_prefix(&format!("{base}-"))
            .context("not the requester's name with a suffix")?;
        ensure!(
            suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
            "{expected_user}"
        );
    } else {
        ensure!(expected_user == base, "{expected_user} is not {base}");
    }
    ensure!(
        target.username.as_deref() == Some(expected_user.as_str()),
        "target username {:?}, expected {expected_user}",
        target.username
    );

    // The instance's password is in the operator's Secret, and nowhere else in clear.
    let password = std::fs::read_to_string(state.path().join(format!("{instance}.password")))?;
    let secrets: Api<Secret> = Api::namespaced(s.admin.clone(), "passport-system");
    let secret = secrets.get(&format!("passport-windows-{uid}")).await?;
    let data = secret.data.unwrap_or_default();
    let stored = data
        .get(&format!("password-{instance}"))
        .context("no password entry for the instance")?;
    ensure!(
        stored.0 == password.as_bytes(),
        "the stored password is not the instance's"
    );
    ensure!(
        data.keys().any(|k| k.starts_with("key-")),
        "no key entry: {:?}",
        data.keys()
    );
    let status = serde_json::to_string(&request)?;
    ensure!(
        !status.contains(&password) && !status.contains("passport-password"),
        "the AccessRequest shows the password or its line"
    );
    let key = format!("{}/rdp", s.namespace);
    // SSM's copy of every provisioning command holds a public key only, and of its output the
    // ciphertext only (the emulator's record of the output may lag).
    let outputs = eventually(Duration::from_secs(30), || async {
        let commands = emulator.commands().await?;
        let grants: Vec<_> = commands.iter().filter(|c| c.is_for("grant", &key)).collect();
        ensure!(!grants.is_empty(), "no provisioning command");
        for grant in &grants {
            ensure!(
                grant.document_name == "AWS-RunPowerShellScript",
                "{}",
                grant.document_name
            );
            let script = grant.script();
            ensure!(!script.contains(&password), "the password is in the SSM command");
            ensure!(
                !script.contains("ConvertTo-SecureString")
                    && script.contains("$PassportPasswordKey = '<RSAKeyValue>"),
                "the script does not carry a public key only"
            );
        }
        let outputs: Vec<String> = grants
            .iter()
            .flat_map(|g| g.invocations.iter().map(|i| i.stdout.clone()))
            .filter(|out| !out.is_empty())
            .collect();
        ensure!(
            !outputs.is_empty(),
            "no output recorded yet: {:?}",
            grants
                .iter()
                .map(|g| (&g.command_id, &g.status, g.invocations.len()))
                .collect::<Vec<_>>()
        );
        Ok(outputs)
    })
    .await?;
    for output in &outputs {
        ensure!(
            output.contains("passport-password: ") && !output.contains(&password),
            "output: {output}"
        );
    }

    account_expiry_follows_extensions(&s, state.path(), &instance).await?;

    if !dc {
        // A second request of alice shares the account there; its provisioning sets a new
        // password, which the first request's Secret gets too.
        s.request("rdp2", "alice", "1h", &[instance.as_str()])?;
        let second = s.wait_phase("rdp2", Phase::Active, TIMEOUT).await?;
        let uid2 = second.uid().context("no uid")?;
        let newer = std::fs::read_to_string(state.path().join(format!("{instance}.password")))?;
        ensure!(newer != password, "the second provisioning set no new password");
        for uid in [&uid, &uid2] {
            let data = secrets
                .get(&format!("passport-windows-{uid}"))
                .await?
                .data
                .unwrap_or_default();
            let stored = data.get(&format!("password-{instance}")).context("no password")?;
            ensure!(
                stored.0 == newer.as_bytes(),
                "request {uid} does not hold the account's current password"
            );
        }
        s.requests
            .patch(
                "rdp2",
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({ "spec": { "completed": true } })),
            )
            .await?;
        s.wait_phase("rdp2", Phase::Completed, TIMEOUT).await?;
    }

    // The end of the request revokes and forgets the password and the keys.
    let patch = serde_json::json!({ "spec": { "completed": true } });
    s.requests
        .patch("rdp", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    s.wait_phase("rdp", Phase::Completed, TIMEOUT).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while secrets
        .get_opt(&format!("passport-windows-{uid}"))
        .await?
        .is_some()
    {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the Windows Secret outlived the request"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(
        emulator
            .commands()
            .await?
            .iter()
            .any(|c| c.is_for("revoke", &key)),
        "no revoke command"
    );
    Ok(())
}

/// The Windows account expires with the access (at most the provisioning time after `expiresAt`),
/// and an approved extension moves its expiry to the new `expiresAt` on the instance.
async fn account_expiry_follows_extensions(s: &Scenario<'_>, state: &Path, instance: &str) -> Result<()> {
    let on_instance = || -> Result<i64> {
        Ok(
            std::fs::read_to_string(state.join(format!("{instance}.expires")))?
                .trim()
                .parse()?,
        )
    };
    let request = s.requests.get("rdp").await?;
    let status = request.status.context("no status")?;
    let expires = status.expires_at.context("no expiresAt")?.0.as_second();
    let recorded = status.targets[0]
        .account_expires_at
        .clone()
        .context("no accountExpiresAt")?
        .0
        .as_second();
    ensure!(
        on_instance()? == recorded && (expires..=expires + 600).contains(&recorded),
        "the account expires at {recorded} (instance: {}), the access at {expires}",
        on_instance()?
    );
    let patch = serde_json::json!({ "spec": { "duration": "3h" } });
    s.requests
        .patch("rdp", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let extended = s
        .wait_for("rdp", "the account's expiry moved", TIMEOUT, |r| {
            r.status.as_ref().is_some_and(|st| {
                st.expires_at.as_ref().map(|t| t.0.as_second()) == Some(expires + 7200)
                    && st.targets[0].account_expires_at.as_ref().map(|t| t.0.as_second())
                        == Some(expires + 7200)
            })
        })
        .await?;
    ensure!(extended.phase() == Phase::Active, "{:?}", extended.phase());
    eventually(Duration::from_secs(30), || async {
        let now = on_instance()?;
        ensure!(now == expires + 7200, "the instance's account expires at {now}");
        Ok(())
    })
    .await
}

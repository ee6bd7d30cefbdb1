//! The Session Manager path up to StartSession, certificates within the request's expiry, the plugin's
//! answers to bad input, an approver's review, `kubectl passport` as a kubectl plugin,
//! and (with PASSPORT_BENCH=1) how long `connect` takes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kube::{Api, api::ListParams};
use passport_crds::{AccessRequest, CredentialRequest};
use passport_tests::instance::Instance;

use super::{
    plugin_for, request_active,
    support::{Plugin, median_and_worst, output, until_allowed},
};
use crate::scenario::Scenario;

pub async fn bad_input(s: &Scenario<'_>) -> Result<()> {
    s.bind("passport-requester", "Group", "developers")?;
    let alice = Plugin::new(s.plane.user_kubeconfig("alice"), &s.namespace, String::new())?;
    until_allowed(&alice, &["list"]).await?;
    let ns = &s.namespace;
    alice.run(&["get", "nope"]).await?.one_error_line(&format!(
        "AccessRequest nope not found in namespace {ns}; list yours with kubectl passport list"
    ))?;
    alice
        .run(&["connect", "nope"])
        .await?
        .one_error_line("AccessRequest nope not found")?;
    alice
        .run(&["connect", "nope", "--key-type", "dsa"])
        .await?
        .one_error_line("invalid value 'dsa'")?;
    alice
        .run(&["request", "--reason", "r"])
        .await?
        .one_error_line("--instance")?;
    let carol = Plugin::new(s.plane.user_kubeconfig("carol"), ns, String::new())?;
    carol.run(&["list"]).await?.one_error_line(&format!(
        "you may not list accessrequests in namespace {ns}: ask an administrator to bind ClusterRole passport-requester"
    ))?;
    let mut nothing = alice.command(&["list"]);
    nothing.env_remove("KUBECONFIG").env("HOME", alice.cache_dir());
    output(nothing, 30)
        .await?
        .one_error_line("no kubeconfig: set KUBECONFIG or pass --kubeconfig")?;

    // Not auto-approved here: --wait times out saying what it waits for; nobody approves their own.
    let request_pending = [
        "request",
        "pending",
        "--instance",
        "i-0ddddddddddddddd4",
        "--reason",
        "r",
    ];
    let run = alice
        .run(&[&request_pending[..], &["--wait", "--timeout", "10s"]].concat())
        .await?;
    let last = run.stderr.lines().last().unwrap_or_default();
    ensure!(
        run.code == Some(1)
            && last.starts_with(
                "kubectl-passport: error: timed out after 10s waiting for AccessRequest pending"
            )
            && last.contains("still Pending"),
        "{run:?}"
    );
    alice
        .run(&["connect", "pending"])
        .await?
        .one_error_line("AccessRequest pending is Pending")?;
    alice
        .run(&["approve", "pending"])
        .await?
        .one_error_line("you cannot approve your own AccessRequest pending")?;
    alice
        .run(&request_pending)
        .await?
        .one_error_line("already exists")?;
    let bad = alice
        .run(&["request", "--instance", "not-an-instance", "--reason", "r"])
        .await?;
    bad.one_error_line("instanceId must be an EC2 instance id")?;
    reviews_plugin_and_version(s, &alice, &carol).await
}

/// An approver reviews; the binary works as `kubectl passport`; version and completion answer.
async fn reviews_plugin_and_version(s: &Scenario<'_>, alice: &Plugin, carol: &Plugin) -> Result<()> {
    let ns = &s.namespace;
    s.bind("passport-approver", "User", "carol")?;
    let denied = until_allowed(carol, &["deny", "pending", "--comment", "not during the freeze"]).await?;
    ensure!(
        denied.stdout.contains("accessreview.passport.dev/pending-deny-"),
        "{}",
        denied.stdout
    );
    let reviews = passport_tests::kubectl::run(
        &s.plane.admin_kubeconfig(),
        &[
            "get",
            "accessreviews",
            "-n",
            ns,
            "-o",
            "jsonpath={.items[*].spec.reviewer}",
        ],
        None,
    )?
    .ok()?;
    ensure!(reviews.stdout.contains("carol"), "reviews: {}", reviews.stdout);

    let dir = alice.bin.parent().context("the plugin's directory")?;
    let mut kubectl = tokio::process::Command::new("kubectl");
    kubectl.args(["passport", "whoami", "-n", ns]);
    alice.env(&mut kubectl);
    kubectl.env(
        "PATH",
        format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()),
    );
    let whoami = output(kubectl, 30).await?.ok("kubectl passport whoami")?;
    ensure!(whoami.stdout.contains("Username:  alice"), "{}", whoami.stdout);

    let version = alice.run(&["version"]).await?.ok("version")?;
    let line = format!("kubectl-passport {} (commit ", env!("CARGO_PKG_VERSION"));
    ensure!(
        version.stdout.starts_with(&line) && version.stdout.lines().count() == 1,
        "version prints one line of version and commit: {}",
        version.stdout
    );
    let completion = alice.run(&["completion", "bash"]).await?.ok("completion")?;
    ensure!(
        completion.stdout.contains("kubectl-passport"),
        "no bash completion"
    );
    Ok(())
}

/// Time from `connect NAME -- true` to the remote command's end, cold (fresh key and credentials each
/// time) and warm (credentials reused). Reported, not asserted.
pub async fn bench(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    let alice = plugin_for(s, "alice", instance)?;
    let name = request_active(s, &alice, instance).await?;
    let mut cold = Vec::new();
    for _ in 0..10 {
        let fresh = plugin_for(s, "alice", instance)?;
        cold.push(timed_connect(&fresh, &name, "connect (cold)").await?);
    }
    timed_connect(&alice, &name, "connect").await?;
    let mut warm = Vec::new();
    for _ in 0..10 {
        warm.push(timed_connect(&alice, &name, "connect (warm)").await?);
    }
    let (cold_median, cold_worst) = median_and_worst(cold);
    let (warm_median, warm_worst) = median_and_worst(warm);
    eprintln!(
        "connect -- true, direct mode: cold (new key + CredentialRequest) median {cold_median:?} worst {cold_worst:?}; \
         warm (certificate reused) median {warm_median:?} worst {warm_worst:?}"
    );
    Ok(())
}

/// How long `connect NAME -- true` takes to the remote command's end.
async fn timed_connect(plugin: &Plugin, name: &str, what: &str) -> Result<Duration> {
    let start = Instant::now();
    plugin
        .run(&["connect", name, "--", "-o", "BatchMode=yes", "true"])
        .await?
        .ok(what)?;
    Ok(start.elapsed())
}

/// Without a direct endpoint the proxy goes to Session Manager: it says how to get the plugin when it
/// is missing; with a (stand-in) plugin on PATH it unseals the scoped AWS session and calls
/// StartSession on the emulator (moto has no StartSession, so either refusal or the plugin is fine).
pub async fn session_manager_path(s: &Scenario<'_>, alice: &Plugin, name: &str, id: &str) -> Result<()> {
    let mut missing = alice.command(&["proxy", name, id, "22"]);
    missing
        .env("PASSPORT_DIRECT_ENDPOINTS", "")
        .env("PATH", "/usr/bin:/bin");
    output(missing, 60)
        .await?
        .one_error_line("session-manager-plugin is not on PATH")?;

    let bin = alice.cache_dir().join("fake-bin");
    std::fs::create_dir_all(&bin)?;
    let record = alice.cache_dir().join("plugin-args");
    let script = format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", record.display());
    let plugin = bin.join("session-manager-plugin");
    std::fs::write(&plugin, script)?;
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let mut ssm = alice.command(&["proxy", name, id, "22"]);
    ssm.env("PASSPORT_DIRECT_ENDPOINTS", "")
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("AWS_ENDPOINT_URL", s.emulator.endpoint())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let run = output(ssm, 60).await?;
    if run.code == Some(0) {
        let args = std::fs::read_to_string(&record)?;
        ensure!(
            args.contains("StartSession") && args.contains(id),
            "plugin arguments: {args}"
        );
        eprintln!("cli: StartSession succeeded; the plugin got: {args}");
    } else {
        run.one_error_line(&format!("Session Manager refused a session to {id}"))?;
        eprintln!("cli: the proxy reached StartSession: {}", run.stderr.trim());
    }
    Ok(())
}

/// Every CredentialRequest the journey made ends no later than the request.
pub async fn valid_before_within_expiry(s: &Scenario<'_>, name: &str) -> Result<()> {
    let request: AccessRequest = s.requests.get(name).await?;
    let expires = request
        .status
        .and_then(|st| st.expires_at)
        .context("no expiresAt")?
        .0;
    let api: Api<CredentialRequest> = Api::namespaced(s.admin.clone(), &s.namespace);
    let issued: Vec<CredentialRequest> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|c| c.spec.access_request == name && c.spec.requester == "alice")
        .collect();
    ensure!(
        issued.len() >= 2,
        "expected CredentialRequests for both key types, got {}",
        issued.len()
    );
    for cr in issued {
        let before = cr.status.and_then(|st| st.valid_before).map(|t| t.0);
        ensure!(
            before.is_some_and(|b| b <= expires),
            "validBefore {before:?} past expiresAt {expires}"
        );
    }
    Ok(())
}

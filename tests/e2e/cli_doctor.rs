//! `kubectl passport doctor` against the local control plane with the operator running: one line per
//! check, all fine for a requester (the approver's right only warned about), and a non-zero exit with
//! the FAIL line and its fix when something blocks use: no operator holding the lease in the named
//! namespace, a user without rights, no kubeconfig. And `ssh-config --instance`, which checks one
//! instance: its file reaches it, or one line says why it cannot be reached.

use std::time::Duration;

use anyhow::{Result, ensure};
use passport_tests::{kubectl, session_manager::plugin_dir, wait::eventually};

use super::support::{Plugin, Run, output, until_allowed};
use crate::scenario::Scenario;

/// A made-up instance: `doctor` only needs PASSPORT_DIRECT_ENDPOINTS set, never reaches it.
pub const INSTANCE: &str = "i-0abcdef0123456789";
/// Lines of a report on a reachable cluster: plugin, kubeconfig, api server, 10 rights, crds,
/// heartbeat, clock, ssh, session-manager-plugin.
const FULL_REPORT_LINES: usize = 18;

/// Lets `users` read leases in `namespace` (the operator's heartbeat), as an administrator would.
fn may_read_leases(s: &Scenario<'_>, namespace: &str, users: &[&str]) -> Result<()> {
    let subjects: String = users
        .iter()
        .map(|u| format!("- {{kind: User, name: {u}, apiGroup: rbac.authorization.k8s.io}}\n"))
        .collect();
    let manifest = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n\
         metadata: {{name: passport-doctor-lease, namespace: {namespace}}}\n\
         rules: [{{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get]}}]\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
         metadata: {{name: passport-doctor-lease-{}, namespace: {namespace}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: passport-doctor-lease}}\n\
         subjects:\n{subjects}",
        s.namespace
    );
    kubectl::apply(&s.plane.admin_kubeconfig(), &manifest)?
        .ok()
        .map(drop)
}

/// The report's line for `check`.
fn line<'a>(run: &'a Run, check: &str) -> Result<&'a str> {
    run.stdout
        .lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{check} ")))
        })
        .ok_or_else(|| anyhow::anyhow!("no {check:?} line in:\n{}", run.stdout))
}

fn expect(run: &Run, check: &str, status: &str, needle: &str) -> Result<()> {
    let found = line(run, check)?;
    ensure!(
        found.starts_with(status) && found.contains(needle),
        "expected {status} {check} with {needle:?}, got {found:?}\n{}",
        run.stdout
    );
    Ok(())
}

/// Runs doctor until its report has `status` on `check` (RoleBindings reach the authorizer late).
async fn doctor_until(plugin: &Plugin, args: &[&str], check: &str, status: &str) -> Result<Run> {
    eventually(Duration::from_secs(30), || async {
        let run = plugin.run(&[&["doctor"], args].concat()).await?;
        expect(&run, check, status, "")?;
        Ok(run)
    })
    .await
}

pub async fn doctor(s: &Scenario<'_>) -> Result<()> {
    let ns = &s.namespace;
    s.bind("passport-requester", "Group", "developers")?;
    // In passport-system the chart's passport-heartbeat-reader Role lets everyone signed in read the
    // lease; elsewhere an administrator would grant it.
    may_read_leases(s, ns, &["alice"])?;
    let direct = format!("{INSTANCE}=127.0.0.1:9");
    let alice = Plugin::new(s.plane.user_kubeconfig("alice"), ns, direct.clone())?;
    until_allowed(&alice, &["list"]).await?;

    let healthy = doctor_until(&alice, &[], "operator heartbeat", "ok").await?;
    ensure!(healthy.code == Some(0), "{healthy:?}");
    println!("doctor as alice:\n{}", healthy.stdout);
    ensure!(
        healthy.stdout.lines().count() == FULL_REPORT_LINES,
        "{}",
        healthy.stdout
    );
    let version = env!("CARGO_PKG_VERSION");
    expect(
        &healthy,
        "plugin",
        "ok",
        &format!("kubectl-passport {version} (commit "),
    )?;
    expect(&healthy, "kubeconfig", "ok", &format!("namespace {ns}"))?;
    expect(&healthy, "api server", "ok", "; you are alice")?;
    for right in [
        "create accessrequests",
        "patch accessrequests",
        "watch accessrequests",
        "create credentialrequests",
        "list events",
    ] {
        expect(
            &healthy,
            &format!("rbac {right}"),
            "ok",
            &format!("allowed in namespace {ns}"),
        )?;
    }
    expect(
        &healthy,
        "rbac create accessreviews",
        "WARN",
        "fix: ask an administrator to bind ClusterRole passport-approver",
    )?;
    expect(&healthy, "operator crds", "ok", "serves every passport kind")?;
    expect(
        &healthy,
        "operator heartbeat",
        "ok",
        "renewed lease passport-system/passport-operator",
    )?;
    expect(&healthy, "clock", "ok", "within 5s")?;
    expect(&healthy, "ssh", "ok", "OpenSSH")?;
    expect(&healthy, "session-manager-plugin", "ok", "not needed")?;

    session_manager_plugin_on_path(s).await?;

    // No operator in the namespace named: its heartbeat fails, and so does doctor.
    let no_operator = doctor_until(
        &alice,
        &["--operator-namespace", ns],
        "operator heartbeat",
        "FAIL",
    )
    .await?;
    expect(
        &no_operator,
        "operator heartbeat",
        "FAIL",
        &format!(
            "no operator holds lease {ns}/passport-operator: none has started; fix: kubectl -n {ns} get pods"
        ),
    )?;
    failed_with(&no_operator, 1)?;

    // carol has no rights in the namespace: every requester right fails with the role to bind.
    let carol = Plugin::new(s.plane.user_kubeconfig("carol"), ns, direct)?;
    let refused = doctor_until(&carol, &[], "operator heartbeat", "ok").await?;
    expect(
        &refused,
        "rbac create accessrequests",
        "FAIL",
        &format!(
            "not allowed in namespace {ns}; fix: ask an administrator to bind ClusterRole passport-requester"
        ),
    )?;
    failed_with(&refused, 8)?;

    // No kubeconfig at all: the local checks still run.
    let mut nothing = alice.command(&["doctor"]);
    nothing.env_remove("KUBECONFIG").env("HOME", alice.cache_dir());
    let lost = output(nothing, 60).await?;
    expect(
        &lost,
        "kubeconfig",
        "FAIL",
        "no kubeconfig: set KUBECONFIG or pass --kubeconfig",
    )?;
    ensure!(lost.stdout.lines().count() == 4, "{}", lost.stdout);
    failed_with(&lost, 1)
}

/// Without direct endpoints, tunnels need AWS's session-manager-plugin: the real one on PATH is
/// found and its version shown; without it, use is blocked.
async fn session_manager_plugin_on_path(s: &Scenario<'_>) -> Result<()> {
    let alice = Plugin::new(s.plane.user_kubeconfig("alice"), &s.namespace, String::new())?;
    let path = std::env::var("PATH").unwrap_or_default();
    let mut with_plugin = alice.command(&["doctor"]);
    with_plugin.env("PATH", format!("{}:{path}", plugin_dir()?.display()));
    let found = output(with_plugin, 60).await?;
    expect(&found, "session-manager-plugin", "ok", "version 1.")?;
    ensure!(found.code == Some(0), "{found:?}");
    let mut without = alice.command(&["doctor"]);
    without.env("PATH", "/usr/bin:/bin");
    let missing = output(without, 60).await?;
    expect(
        &missing,
        "session-manager-plugin",
        "FAIL",
        "cannot run it (session-manager-plugin is not on PATH)",
    )?;
    failed_with(&missing, 1)
}

/// doctor exited 1 saying how many checks failed.
fn failed_with(run: &Run, failures: usize) -> Result<()> {
    ensure!(
        run.code == Some(1)
            && run.stderr.trim()
                == format!("kubectl-passport: doctor: {failures} check(s) failed; fix the FAIL lines above"),
        "{run:?}"
    );
    Ok(())
}

/// `ssh-config --instance` on an instance alice may reach: the file holds its entry, ssh logs in.
pub async fn ssh_config_for_one_instance(alice: &Plugin, instance: &str, user: &str) -> Result<()> {
    let config = alice
        .run(&["ssh-config", "--instance", instance])
        .await?
        .ok("ssh-config --instance")?
        .stdout
        .trim()
        .to_owned();
    ensure!(config.ends_with(&format!("/ssh_config-{instance}")), "{config}");
    let ssh = ["-F", &config, "-o", "BatchMode=yes", instance, "whoami"];
    let whoami = output(alice.tool("ssh", &ssh), 60)
        .await?
        .ok("ssh -F <instance config>")?;
    ensure!(whoami.stdout.trim() == user, "ssh says {:?}", whoami.stdout);
    Ok(())
}

/// `ssh-config --instance` says in one line why an instance cannot be reached: no request of
/// alice's names it, or the one that does is still Pending (alice is not among the requesters the
/// namespace's policy approves automatically).
pub async fn ssh_config_for_one_instance_says_why_not(s: &Scenario<'_>) -> Result<()> {
    let ns = &s.namespace;
    s.bind("passport-requester", "Group", "developers")?;
    let alice = Plugin::new(s.plane.user_kubeconfig("alice"), ns, String::new())?;
    until_allowed(&alice, &["list"]).await?;
    let unnamed = "i-0fedcba9876543210";
    alice
        .run(&["ssh-config", "--instance", unnamed])
        .await?
        .one_error_line(&format!(
            "no AccessRequest of yours in namespace {ns} names {unnamed}; ask for one with kubectl passport request --instance {unnamed} --reason REASON --wait"
        ))?;
    let request = [
        "request",
        "waiting",
        "--instance",
        INSTANCE,
        "--reason",
        "e2e: not approved",
    ];
    alice.run(&request).await?.ok("request")?;
    alice
        .run(&["ssh-config", "--instance", INSTANCE])
        .await?
        .one_error_line(&format!(
            "{INSTANCE} cannot be reached now: AccessRequest waiting is Pending: "
        ))
}

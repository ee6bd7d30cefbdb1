//! `kubectl passport` against requests it must not make easy: a request over its policy's maximum
//! ends at once under `--wait`, naming the limit and the policy; `--dry-run` creates nothing and says
//! which policy applies and what it would take (the operator's own decision code); bob is refused in
//! one line on alice's request before anything is fetched; and `approve` binds the AccessReview to
//! the request's UID and the duration it asks for now.

// The same helpers `cli` uses (its module keeps them private); not all are needed here.
#[path = "cli_support.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kube::{Api, api::ListParams};
use passport_crds::{AccessRequest, AccessReview, ReviewDecision};
use passport_tests::fixtures;

use crate::{E2e, scenario::Scenario, scenario::on_shared_stack, test};
use support::{Plugin, until_allowed};

/// The one instance the namespace's policy allows; no test here provisions it.
const INSTANCE: &str = "i-0eeeeeeeeeeeeeee5";

pub fn trials() -> Vec<E2e> {
    vec![
        test(
            "cli_hostile::over_max_wait_ends_at_once_naming_the_limit",
            |env| async move {
                let s = on_shared_stack(&env, "clihmax", &["nobody"], &[]).await?;
                over_max_wait(&s).await
            },
        ),
        test(
            "cli_hostile::dry_run_creates_nothing_and_names_the_policy",
            |env| async move {
                let s = on_shared_stack(&env, "clihdry", &["nobody"], &[]).await?;
                dry_run(&s).await
            },
        ),
        test(
            "cli_hostile::others_refused_in_one_line_and_approve_binds_uid_and_duration",
            |env| async move {
                let s = on_shared_stack(&env, "clihown", &["nobody"], &[]).await?;
                owner_and_approval(&s).await
            },
        ),
    ]
}

/// Developers may ask for [`INSTANCE`] for at most 4h; carol approves. alice's plugin, once her
/// rights have reached the authorizer.
async fn app_servers(s: &Scenario<'_>) -> Result<Plugin> {
    s.apply(
        &fixtures::policy("app-servers")
            .namespace(&s.namespace)
            .requester_groups(["developers"])
            .instances([INSTANCE])
            .max_duration("4h")
            .with(|p| p.spec.approval.approvers.users = vec!["carol".to_owned()]),
    )?;
    s.bind("passport-requester", "Group", "developers")?;
    let alice = Plugin::new(s.plane.user_kubeconfig("alice"), &s.namespace, String::new())?;
    until_allowed(&alice, &["list"]).await?;
    Ok(alice)
}

fn request_args<'a>(name: &'a str, duration: &'a str, account: &'a str) -> Vec<&'a str> {
    vec![
        "request",
        name,
        "--instance",
        INSTANCE,
        "--reason",
        "e2e: hostile CLI",
        "--duration",
        duration,
        "--account",
        account,
    ]
}

async fn over_max_wait(s: &Scenario<'_>) -> Result<()> {
    let alice = app_servers(s).await?;
    let args = [
        request_args("over", "5h", &s.account),
        vec!["--wait", "--timeout", "2m"],
    ]
    .concat();
    let started = Instant::now();
    let run = alice.run(&args).await?;
    let took = started.elapsed();
    let last = run.stderr.lines().last().unwrap_or_default();
    ensure!(
        run.code.is_some_and(|c| c != 0),
        "request --wait over the maximum succeeded: {run:?}"
    );
    ensure!(
        last.starts_with("kubectl-passport: error: AccessRequest over ended Denied: ")
            && last.contains("at most 4h under AccessPolicy app-servers"),
        "the last line should name the limit and the policy: {run:?}"
    );
    ensure!(
        took < Duration::from_secs(60),
        "--wait took {took:?} to see the refusal (its timeout is 2m): {run:?}"
    );
    let request = s.requests.get("over").await?;
    ensure!(
        request
            .status
            .as_ref()
            .is_some_and(|st| st.message.contains("at most 4h")),
        "status: {:?}",
        request.status
    );
    Ok(())
}

async fn dry_run(s: &Scenario<'_>) -> Result<()> {
    let alice = app_servers(s).await?;
    let within = [request_args("dry", "2h", &s.account), vec!["--dry-run"]].concat();
    let run = alice.run(&within).await?.ok("request --dry-run")?;
    for needle in [
        "Dry run: AccessRequest",
        "Policy:     app-servers (at most 4h)",
        "Duration:   2h",
        "needs approval: 1 approval from user carol under AccessPolicy app-servers",
    ] {
        ensure!(run.stdout.contains(needle), "no {needle:?} in:\n{}", run.stdout);
    }
    let over = [request_args("dry", "5h", &s.account), vec!["--dry-run"]].concat();
    let run = alice.run(&over).await?.ok("request --dry-run over the maximum")?;
    ensure!(
        run.stdout
            .contains("refused at once: at most 4h under AccessPolicy app-servers"),
        "{}",
        run.stdout
    );
    let json = alice
        .run(&[&within[..], &["-o", "json"]].concat())
        .await?
        .ok("request --dry-run -o json")?;
    let shown: serde_json::Value =
        serde_json::from_str(&json.stdout).with_context(|| format!("not JSON: {}", json.stdout))?;
    ensure!(
        shown["dryRun"] == true
            && shown["decision"] == "NeedsApproval"
            && shown["duration"] == "2h"
            && shown["policies"][0]["policy"] == "app-servers"
            && shown["policies"][0]["approvalsRequired"] == 1
            && shown["requesterGroups"][0] == "developers",
        "{shown}"
    );
    // The apiserver still judges the object: a bad instance id is its one line, and nothing exists.
    let bad = alice
        .run(&[
            "request",
            "--instance",
            "not-an-instance",
            "--reason",
            "r",
            "--dry-run",
        ])
        .await?;
    bad.one_error_line("instanceId must be an EC2 instance id")?;
    let created = s.requests.list(&ListParams::default()).await?.items;
    ensure!(
        created.is_empty(),
        "--dry-run created {:?}",
        created.iter().map(|r| &r.metadata.name).collect::<Vec<_>>()
    );
    Ok(())
}

async fn owner_and_approval(s: &Scenario<'_>) -> Result<()> {
    let alice = app_servers(s).await?;
    let ns = &s.namespace;
    alice
        .run(&request_args("mine", "1h", &s.account))
        .await?
        .ok("request")?;

    // bob (a developer too, so he may read it) is refused before any key or credential is made.
    let bob = Plugin::new(s.plane.user_kubeconfig("bob"), ns, String::new())?;
    let refusal = format!("AccessRequest {ns}/mine belongs to alice; you are bob");
    bob.run(&["ssh-config", "mine"]).await?.one_error_line(&refusal)?;
    bob.run(&["connect", "mine"]).await?.one_error_line(&refusal)?;
    let keys = bob.cache_dir().join("passport");
    ensure!(
        !keys.exists(),
        "bob's refused runs left {} behind",
        keys.display()
    );

    // alice asks for longer before anyone approves: carol's review names what it asks for now.
    alice
        .run(&["extend", "mine", "--to", "2h"])
        .await?
        .ok("extend while Pending")?;
    s.bind("passport-approver", "User", "carol")?;
    let carol = Plugin::new(s.plane.user_kubeconfig("carol"), ns, String::new())?;
    let request: AccessRequest = s.requests.get("mine").await?;
    let uid = request.metadata.uid.clone().context("no uid")?;
    let approved = until_allowed(&carol, &["approve", "mine", "--comment", "go"]).await?;
    ensure!(
        approved
            .stdout
            .contains(&format!("approved {ns}/mine (uid {uid}) for 2h")),
        "{}",
        approved.stdout
    );
    let reviews: Api<AccessReview> = Api::namespaced(s.admin.clone(), ns);
    let all = reviews.list(&ListParams::default()).await?.items;
    let [review] = all.as_slice() else {
        anyhow::bail!("expected one AccessReview, found {}", all.len());
    };
    ensure!(
        review.spec.access_request == "mine"
            && review.spec.access_request_uid.as_deref() == Some(uid.as_str())
            && review.spec.duration.as_deref() == Some("2h")
            && review.spec.decision == ReviewDecision::Approve
            && review.spec.reviewer == "carol",
        "{:?}",
        review.spec
    );
    Ok(())
}

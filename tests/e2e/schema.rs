//! The API as the apiserver enforces it: examples apply, bad input is rejected at admission with a
//! message naming the field, `kubectl explain` teaches the API, `kubectl get ar` shows the columns.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result, ensure};
use passport_tests::{
    fixtures::{self, INSTANCE, RequestBuilder, Yaml},
    kubectl,
    wait::eventually,
};

use crate::{E2e, test};

pub fn trials() -> Vec<E2e> {
    vec![
        test("schema::examples_apply_and_print_columns", |env| async move {
            let kubeconfig = env.admin_kubeconfig().await?;
            examples_apply_and_print_columns(&kubeconfig)
        }),
        test("schema::rejects_bad_access_requests", |env| async move {
            let ns = env.namespace("reject").await?;
            rejects_bad_access_requests(&env.admin_kubeconfig().await?, &ns)
        }),
        test("schema::rejects_forbidden_updates", |env| async move {
            let ns = env.namespace("update").await?;
            rejects_forbidden_updates(&env.admin_kubeconfig().await?, &ns)
        }),
        test("schema::explain_teaches_the_api", |env| async move {
            explain_teaches_the_api(&env.admin_kubeconfig().await?).await
        }),
    ]
}

fn examples_apply_and_print_columns(kubeconfig: &Path) -> Result<()> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let examples = examples.to_string_lossy();
    kubectl::run(kubeconfig, &["apply", "-f", &examples], None)?.ok()?;
    let table = kubectl::run(kubeconfig, &["get", "ar", "-n", "team-a"], None)?
        .ok()?
        .stdout;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        header == ["NAME", "REQUESTER", "PHASE", "TARGETS", "EXPIRES", "AGE"],
        "kubectl get ar printed {table}"
    );
    ensure!(
        table.contains("cpu-alarm-inc123") && table.contains("alice@example.com"),
        "{table}"
    );
    ensure!(table.contains("i-0123456789abcdef0"), "{table}");
    let defaulted = kubectl::run(
        kubeconfig,
        &[
            "get",
            "ar",
            "cpu-alarm-inc123",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.spec.completed}",
        ],
        None,
    )?
    .ok()?
    .stdout;
    ensure!(
        defaulted == "false",
        "spec.completed should default to false, got {defaulted:?}"
    );
    let by_category = kubectl::run(kubeconfig, &["get", "passport", "-A", "-o", "name"], None)?
        .ok()?
        .stdout;
    for kind in [
        "accessrequest",
        "accesspolicy",
        "accessreview",
        "credentialrequest",
    ] {
        ensure!(
            by_category.contains(kind),
            "`kubectl get passport` is missing {kind}: {by_category}"
        );
    }
    Ok(())
}

/// Applies each manifest and checks the apiserver refused it with every expected fragment in its error.
fn expect_rejections(kubeconfig: &Path, what: &str, cases: &[(&str, String, &[&str])]) -> Result<()> {
    let mut failures = Vec::new();
    for (case, manifest, expected) in cases {
        let outcome = kubectl::apply(kubeconfig, manifest)?;
        if outcome.success {
            failures.push(format!("{case}: was accepted"));
        } else if let Some(missing) = expected.iter().find(|e| !outcome.stderr.contains(**e)) {
            failures.push(format!(
                "{case}: error lacks {missing:?}: {}",
                outcome.stderr.trim()
            ));
        }
    }
    ensure!(
        failures.is_empty(),
        "{what} not rejected as expected:\n{}",
        failures.join("\n")
    );
    Ok(())
}

/// A valid AccessRequest in `ns`: alice, one instance, 1h. Every case below changes one thing.
fn valid(ns: &str, name: &str) -> RequestBuilder {
    fixtures::request(name)
        .namespace(ns)
        .requester("alice")
        .reason("disk full on app01")
        .duration("1h")
        .targets([INSTANCE])
}

fn rejects_bad_access_requests(kubeconfig: &Path, ns: &str) -> Result<()> {
    let bad = |i: usize| valid(ns, &format!("bad-{i}")).reason("disk full");
    let many: Vec<String> = (0..51).map(|i| format!("i-{i:017x}")).collect();
    // The one case the typed API cannot express: a request without a reason. That part stays raw.
    let mut no_reason = serde_json::to_value(bad(2))?;
    no_reason["spec"]
        .as_object_mut()
        .context("spec is not an object")?
        .remove("reason");
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "duration 13h",
            bad(0).duration("13h").yaml()?,
            &["spec.duration", "between 1m and 12h"],
        ),
        (
            "duration abc",
            bad(1).duration("abc").yaml()?,
            &["spec.duration", "Go syntax"],
        ),
        ("no reason", no_reason.yaml()?, &["spec.reason", "Required value"]),
        ("empty reason", bad(3).reason("").yaml()?, &["spec.reason"]),
        (
            "empty targets",
            bad(4).targets(Vec::<String>::new()).yaml()?,
            &["spec.targets", "at least 1"],
        ),
        (
            "51 targets",
            bad(5).targets(many).yaml()?,
            &["spec.targets", "at most 50"],
        ),
        (
            "duplicate target",
            bad(6).targets([INSTANCE, INSTANCE]).yaml()?,
            &["spec.targets", "Duplicate value"],
        ),
        (
            "instance id i-xyz",
            bad(7).targets(["i-xyz"]).yaml()?,
            &["spec.targets[0].instanceId", "EC2 instance id"],
        ),
        (
            "bad source CIDR",
            bad(8).source_cidrs(["not-a-cidr"]).yaml()?,
            &["spec.sourceCidrs", "CIDR"],
        ),
    ];
    expect_rejections(kubeconfig, "bad AccessRequests", &cases)
}

fn rejects_forbidden_updates(kubeconfig: &Path, ns: &str) -> Result<()> {
    let original = || valid(ns, "update-rules");
    kubectl::apply(kubeconfig, &original().yaml()?)?.ok()?;
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "changing requester",
            original().requester("mallory").yaml()?,
            &["spec.requester", "immutable"],
        ),
        (
            "changing targets",
            original().targets(["i-0fedcba9876543210"]).yaml()?,
            &["spec.targets", "immutable"],
        ),
        (
            "shrinking duration",
            original().duration("30m").yaml()?,
            &["spec.duration", "only grow"],
        ),
        (
            "adding an account",
            original().account("other").yaml()?,
            &["spec.account", "immutable"],
        ),
        (
            "rewording the reason",
            original().reason("something else").yaml()?,
            &["spec.reason", "immutable"],
        ),
        (
            "adding a ticket",
            original().ticket("INC-999").yaml()?,
            &["spec.ticket", "immutable"],
        ),
    ];
    expect_rejections(kubeconfig, "forbidden updates", &cases)?;

    // What the rules allow: extending, then completing.
    let extended = || original().duration("2h");
    kubectl::apply(kubeconfig, &extended().yaml()?)?.ok()?;
    kubectl::apply(kubeconfig, &extended().completed().yaml()?)?.ok()?;
    let outcome = kubectl::apply(kubeconfig, &extended().yaml()?)?;
    ensure!(!outcome.success, "completed true→false was accepted");
    ensure!(
        outcome.stderr.contains("spec.completed") && outcome.stderr.contains("false to true"),
        "completed true→false error does not name the field: {}",
        outcome.stderr
    );
    Ok(())
}

async fn explain_teaches_the_api(kubeconfig: &Path) -> Result<()> {
    // The apiserver publishes a new CRD's OpenAPI a moment after it is Established; kubectl reads
    // it from the discovery document, which has no watch.
    let explained = eventually(Duration::from_secs(60), || async {
        let outcome = kubectl::run(kubeconfig, &["explain", "accessrequest.spec.duration"], None)?;
        ensure!(
            outcome.success && outcome.stdout.contains("Go duration syntax"),
            "kubectl explain accessrequest.spec.duration never showed its description: {}{}",
            outcome.stdout,
            outcome.stderr
        );
        Ok(outcome.stdout)
    })
    .await?;
    ensure!(explained.contains("12h"), "{explained}");
    Ok(())
}

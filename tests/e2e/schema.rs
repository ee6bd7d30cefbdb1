//! The API as the apiserver enforces it: examples apply, bad input is rejected at admission with a
//! message naming the field, `kubectl explain` teaches the API, `kubectl get ar` shows the columns.

use std::{path::Path, time::Duration};

use anyhow::{Result, ensure};
use passport_tests::kubectl;

use crate::{TestFn, test};

pub fn trials() -> Vec<(&'static str, TestFn)> {
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

/// An AccessRequest manifest with `spec` lines replaced by the caller.
fn access_request(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: passport.dev/v1alpha1\nkind: AccessRequest\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}

const VALID_SPEC: &str = "  requester: alice\n  reason: disk full on app01\n  duration: 1h\n  targets:\n  - instanceId: i-0123456789abcdef0\n";

fn targets(count: usize) -> String {
    (0..count)
        .map(|i| format!("  - instanceId: i-{i:017x}\n"))
        .collect()
}

fn rejects_bad_access_requests(kubeconfig: &Path, ns: &str) -> Result<()> {
    let base = "  requester: alice\n  reason: disk full\n";
    let one_target = "  targets:\n  - instanceId: i-0123456789abcdef0\n";
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "duration 13h",
            format!("{base}  duration: 13h\n{one_target}"),
            &["spec.duration", "between 1m and 12h"],
        ),
        (
            "duration abc",
            format!("{base}  duration: abc\n{one_target}"),
            &["spec.duration", "Go syntax"],
        ),
        (
            "no reason",
            format!("  requester: alice\n{one_target}"),
            &["spec.reason", "Required value"],
        ),
        (
            "empty reason",
            format!("  requester: alice\n  reason: ''\n{one_target}"),
            &["spec.reason"],
        ),
        (
            "empty targets",
            format!("{base}  targets: []\n"),
            &["spec.targets", "at least 1"],
        ),
        (
            "51 targets",
            format!("{base}  targets:\n{}", targets(51)),
            &["spec.targets", "at most 50"],
        ),
        (
            "duplicate target",
            format!(
                "{base}  targets:\n  - instanceId: i-0123456789abcdef0\n  - instanceId: i-0123456789abcdef0\n"
            ),
            &["spec.targets", "Duplicate value"],
        ),
        (
            "instance id i-xyz",
            format!("{base}  targets:\n  - instanceId: i-xyz\n"),
            &["spec.targets[0].instanceId", "EC2 instance id"],
        ),
        (
            "bad source CIDR",
            format!("{base}  sourceCidrs: [not-a-cidr]\n{one_target}"),
            &["spec.sourceCidrs", "CIDR"],
        ),
    ];
    let manifests: Vec<(&str, String, &[&str])> = cases
        .iter()
        .enumerate()
        .map(|(i, (what, spec, expected))| (*what, access_request(ns, &format!("bad-{i}"), spec), *expected))
        .collect();
    expect_rejections(kubeconfig, "bad AccessRequests", &manifests)
}

fn rejects_forbidden_updates(kubeconfig: &Path, ns: &str) -> Result<()> {
    let name = "update-rules";
    kubectl::apply(kubeconfig, &access_request(ns, name, VALID_SPEC))?.ok()?;
    let changed = |from: &str, to: &str| access_request(ns, name, &VALID_SPEC.replace(from, to));
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "changing requester",
            changed("requester: alice", "requester: mallory"),
            &["spec.requester", "immutable"],
        ),
        (
            "changing targets",
            changed("i-0123456789abcdef0", "i-0fedcba9876543210"),
            &["spec.targets", "immutable"],
        ),
        (
            "shrinking duration",
            changed("duration: 1h", "duration: 30m"),
            &["spec.duration", "only grow"],
        ),
        (
            "adding an account",
            format!("{}  account: other\n", access_request(ns, name, VALID_SPEC)),
            &["spec.account", "immutable"],
        ),
    ];
    expect_rejections(kubeconfig, "forbidden updates", &cases)?;

    // What the rules allow: extending, then completing.
    kubectl::apply(kubeconfig, &changed("duration: 1h", "duration: 2h"))?.ok()?;
    let completed = format!("{}  completed: true\n", changed("duration: 1h", "duration: 2h"));
    kubectl::apply(kubeconfig, &completed)?.ok()?;
    let reopened = format!("{}  completed: false\n", changed("duration: 1h", "duration: 2h"));
    let outcome = kubectl::apply(kubeconfig, &reopened)?;
    ensure!(!outcome.success, "completed true→false was accepted");
    ensure!(
        outcome.stderr.contains("spec.completed") && outcome.stderr.contains("false to true"),
        "completed true→false error does not name the field: {}",
        outcome.stderr
    );
    Ok(())
}

async fn explain_teaches_the_api(kubeconfig: &Path) -> Result<()> {
    // The apiserver publishes a new CRD's OpenAPI a moment after it is Established.
    let mut last = String::new();
    for _ in 0..60 {
        let outcome = kubectl::run(kubeconfig, &["explain", "accessrequest.spec.duration"], None)?;
        if outcome.success && outcome.stdout.contains("Go duration syntax") {
            ensure!(outcome.stdout.contains("12h"), "{}", outcome.stdout);
            return Ok(());
        }
        last = format!("{}{}", outcome.stdout, outcome.stderr);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("kubectl explain accessrequest.spec.duration never showed its description: {last}")
}

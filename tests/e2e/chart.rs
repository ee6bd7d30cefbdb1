//! The Helm chart (charts/passport) is the one source of passport's manifests: deploy/ is what
//! scripts/render-deploy.sh renders from it, `helm lint --strict` passes, kube-score finds nothing
//! (each finding is fixed, or justified in the chart where it is ignored), and values.schema.json
//! refuses bad values naming them. helm and kube-score come from tests/tools/build.sh. Installing
//! it on a cluster: [`crate::chart_install`]. None of these needs a control plane.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use passport_tests::tools::{self, render, repo};

use crate::{E2e, alone};

pub fn trials() -> Vec<E2e> {
    vec![
        alone("chart::deploy_is_rendered_from_the_chart", || async {
            deploy_is_rendered_from_the_chart()
        }),
        alone("chart::lints_strictly_with_every_option", || async {
            lints_strictly()
        }),
        alone("chart::kube_score_finds_nothing", || async {
            kube_score_finds_nothing()
        }),
        alone("chart::schema_refuses_bad_values_naming_them", || async {
            schema_refuses_bad_values()
        }),
    ]
}

/// The files scripts/render-deploy.sh writes (deploy/crds.yaml is the CRD generator's, checked by
/// the crds crate's own drift test).
const RENDERED: [&str; 3] = ["rbac.yaml", "admission.yaml", "operator.yaml"];

/// Every optional part of the chart switched on, with values that exercise each template branch.
pub const EVERY_OPTION: [&str; 8] = [
    "logbook.sink=https://audit.example.com/passport",
    "logbook.caConfigMap=audit-ca",
    "logbook.authSecret=audit-auth",
    "logbook.stdout=true",
    "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
    "metrics.serviceMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.serviceMonitor.labels.release=prometheus",
];

fn deploy_is_rendered_from_the_chart() -> Result<()> {
    let out = tempfile::tempdir()?;
    let helm = tools::dir()?.join("helm");
    let rendered = std::process::Command::new("bash")
        .arg(repo().join("scripts/render-deploy.sh"))
        .arg(out.path())
        .env("HELM", &helm)
        .output()
        .context("running scripts/render-deploy.sh")?;
    ensure!(
        rendered.status.success(),
        "scripts/render-deploy.sh failed: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let mut drifted = Vec::new();
    for file in RENDERED {
        let committed = std::fs::read_to_string(repo().join("deploy").join(file))?;
        let fresh = std::fs::read_to_string(out.path().join(file))?;
        if let Some(line) = first_difference(&committed, &fresh) {
            drifted.push(format!("deploy/{file} {line}"));
        }
    }
    ensure!(
        drifted.is_empty(),
        "deploy/ is not what the chart renders; edit charts/passport, then run scripts/render-deploy.sh:\n{}",
        drifted.join("\n")
    );
    Ok(())
}

/// Where two texts first differ, by line, or `None` when they are the same.
fn first_difference(committed: &str, fresh: &str) -> Option<String> {
    let (mut old, mut new) = (committed.lines(), fresh.lines());
    for number in 1.. {
        match (old.next(), new.next()) {
            (None, None) => return None,
            (was, now) if was != now => {
                return Some(format!("line {number}: has {was:?}, the chart renders {now:?}"));
            }
            _ => {}
        }
    }
    None
}

fn lints_strictly() -> Result<()> {
    let chart = tools::chart();
    let chart = chart.to_str().context("chart path")?;
    tools::checked("helm", &["lint", "--strict", chart], None)?;
    let mut args = vec!["lint", "--strict", chart];
    for set in EVERY_OPTION {
        args.extend(["--set", set]);
    }
    tools::checked("helm", &args, None)?;
    Ok(())
}

fn kube_score_finds_nothing() -> Result<()> {
    let every_option = tempfile::Builder::new().suffix(".yaml").tempfile()?;
    std::fs::write(every_option.path(), render(&EVERY_OPTION)?)?;
    let deploy: Vec<String> = RENDERED.iter().map(|file| format!("deploy/{file}")).collect();
    for manifests in [deploy, vec![path(every_option.path())?]] {
        let mut args = vec![
            "score",
            "--exit-one-on-warning",
            "--output-format=ci",
            "--enable-optional-test=container-seccomp-profile",
            "--enable-optional-test=container-ports-check",
        ];
        args.extend(manifests.iter().map(String::as_str));
        let run = tools::run("kube-score", &args, None)?;
        let findings: Vec<&str> = run
            .stdout
            .lines()
            .filter(|line| !line.starts_with("[OK]") && !line.starts_with("[SKIPPED]"))
            .collect();
        ensure!(
            run.success && findings.is_empty(),
            "kube-score on {}: fix each finding in the chart, or justify it there \
             (annotation kube-score/ignore with a comment saying why):\n{}\n{}",
            manifests.join(" "),
            findings.join("\n"),
            run.stderr.trim()
        );
    }
    Ok(())
}

fn path(path: &Path) -> Result<String> {
    Ok(path.to_str().context("non-UTF-8 path")?.to_owned())
}

/// `(--set value, what the refusal must say)`: each bad value is refused, naming its field.
const BAD_VALUES: [(&str, &str); 9] = [
    (
        "logFormat=xml",
        "at '/logFormat': value must be one of 'text', 'json'",
    ),
    (
        "runAsUser=1000",
        "at '/runAsUser': minimum: got 1,000, want 10,000",
    ),
    ("replicas=0", "at '/replicas': minimum: got 0, want 1"),
    (
        "logbook.sink=ftp://audit",
        "at '/logbook/sink': 'ftp://audit' does not match pattern",
    ),
    (
        "image.pullPolicy=Sometimes",
        "at '/image/pullPolicy': value must be one of",
    ),
    (
        "resources.limits.memory=lots",
        "at '/resources/limits/memory': 'lots' does not match pattern",
    ),
    (
        "logbook.backlogLimit=-1",
        "at '/logbook/backlogLimit': minimum: got -1, want 1",
    ),
    ("replica=3", "additional properties 'replica' not allowed"),
    (
        "finishedRetention=7d",
        "at '/finishedRetention': '7d' does not match pattern",
    ),
];

fn schema_refuses_bad_values() -> Result<()> {
    let chart = tools::chart();
    let chart = chart.to_str().context("chart path")?;
    let mut wrong = Vec::new();
    for (set, expected) in BAD_VALUES {
        for command in ["template", "lint"] {
            let mut args = vec![command];
            if command == "template" {
                args.push("passport");
            }
            args.extend([chart, "--set", set]);
            let run = tools::run("helm", &args, None)?;
            let said = format!("{}{}", run.stdout, run.stderr);
            if run.success || !said.contains(expected) {
                wrong.push(format!(
                    "helm {command} --set {set}: succeeded={}, wanted a refusal saying {expected:?}, got:\n{}",
                    run.success,
                    said.trim()
                ));
            }
        }
    }
    ensure!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}

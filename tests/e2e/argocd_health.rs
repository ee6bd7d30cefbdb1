//! The Argo CD health check for AccessRequest (deploy/argocd/passport.dev/AccessRequest/health.lua)
//! gives each case of its health_test.yaml the status and message written there, run the way Argo
//! CD runs it (gopher-lua with only the libraries Argo CD opens; tests/argocd-health, built once per
//! machine), and its cases are real AccessRequests. Needs no control plane.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};
use passport_crds::AccessRequest;
use serde::Deserialize;

use crate::{E2e, alone};

pub fn trials() -> Vec<E2e> {
    vec![
        alone(
            "argocd_health::every_case_gets_its_status_and_message",
            || async { every_case_gets_its_status_and_message() },
        ),
        alone(
            "argocd_health::cases_are_access_requests_and_each_input_has_a_case",
            || async { cases_are_access_requests_and_each_input_has_a_case() },
        ),
    ]
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check_dir() -> PathBuf {
    repo().join("deploy/argocd/passport.dev/AccessRequest")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HealthTest {
    input_path: String,
    health_status: HealthStatus,
}

#[derive(Deserialize, Debug, PartialEq, Eq)]
struct HealthStatus {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
}

/// One line of `argocd-health -json`.
#[derive(Deserialize)]
struct Outcome {
    case: String,
    pass: bool,
    want: HealthStatus,
    got: Option<HealthStatus>,
    #[serde(default)]
    error: String,
}

fn health_tests() -> Result<HealthTests> {
    let path = check_dir().join("health_test.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Builds the harness (cached per machine by its build script) and returns its path.
fn harness() -> Result<PathBuf> {
    let script = repo().join("tests/argocd-health/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    ensure!(
        out.status.success(),
        "{} failed ({}): {}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    ensure!(path.is_file(), "the harness is not at {}", path.display());
    Ok(path)
}

fn every_case_gets_its_status_and_message() -> Result<()> {
    let cases = health_tests()?.tests;
    ensure!(!cases.is_empty(), "health_test.yaml has no cases");
    let out = Command::new(harness()?)
        .arg("-json")
        .arg(check_dir())
        .output()
        .context("running argocd-health")?;
    let stdout = String::from_utf8(out.stdout)?;
    // Exit 1 only says some case differs (read below); anything else means no verdict at all.
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!(
            "argocd-health could not run the cases ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let outcomes: Vec<Outcome> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("argocd-health printed {line:?}")))
        .collect::<Result<_>>()?;
    let ran: Vec<&str> = outcomes.iter().map(|o| o.case.as_str()).collect();
    let listed: Vec<&str> = cases.iter().map(|c| c.input_path.as_str()).collect();
    ensure!(
        ran == listed,
        "argocd-health ran {ran:?}, health_test.yaml lists {listed:?}"
    );
    let mut failures = Vec::new();
    for (outcome, case) in outcomes.iter().zip(&cases) {
        ensure!(
            outcome.want == case.health_status,
            "argocd-health read {:?} for {}, health_test.yaml says {:?}",
            outcome.want,
            case.input_path,
            case.health_status
        );
        let got_wanted = outcome.got.as_ref() == Some(&outcome.want);
        if outcome.pass && got_wanted {
            continue;
        }
        failures.push(match &outcome.got {
            _ if !outcome.error.is_empty() => {
                format!("{}: the script failed: {}", outcome.case, outcome.error)
            }
            Some(got) => {
                let mut diff = Vec::new();
                if got.status != outcome.want.status {
                    diff.push(format!(
                        "status: want {:?}, got {:?}",
                        outcome.want.status, got.status
                    ));
                }
                if got.message != outcome.want.message {
                    diff.push(format!(
                        "message: want {:?}, got {:?}",
                        outcome.want.message, got.message
                    ));
                }
                format!("{}: {}", outcome.case, diff.join("; "))
            }
            None => format!("{}: no result", outcome.case),
        });
    }
    ensure!(
        failures.is_empty() && out.status.success(),
        "{} of {} cases differ ({}):\n{}",
        failures.len(),
        cases.len(),
        out.status,
        failures.join("\n")
    );
    Ok(())
}

/// Every testdata object parses as passport's own AccessRequest type, so the cases follow the status
/// the operator really writes; every input has exactly one case.
fn cases_are_access_requests_and_each_input_has_a_case() -> Result<()> {
    let cases = health_tests()?.tests;
    let mut listed = BTreeSet::new();
    for case in &cases {
        ensure!(
            listed.insert(case.input_path.clone()),
            "{} has two cases",
            case.input_path
        );
        let path = check_dir().join(&case.input_path);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let request: AccessRequest = serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not an AccessRequest", case.input_path))?;
        ensure!(
            request.metadata.name.is_some(),
            "{} has no metadata.name",
            case.input_path
        );
    }
    let mut inputs = BTreeSet::new();
    for entry in std::fs::read_dir(check_dir().join("testdata"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        inputs.insert(format!("testdata/{name}"));
    }
    let orphans: Vec<&String> = inputs.difference(&listed).collect();
    ensure!(
        orphans.is_empty(),
        "inputs without a case in health_test.yaml: {orphans:?}"
    );
    Ok(())
}

//! The Kubernetes tools the chart's checks use: helm and kube-score, built from their Go modules by
//! `tests/tools/build.sh` once per machine (or found in the directory `PASSPORT_TOOLS_BIN` names).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use anyhow::{Context, Result};
use local_controlplane::{binaries::cached_build, kubectl::Outcome};

/// The directory holding `helm` and `kube-score` (looked up once per run).
pub fn dir() -> Result<PathBuf> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.clone());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/build.sh");
    let built = cached_build("PASSPORT_TOOLS_BIN", &script)?;
    Ok(DIR.get_or_init(|| built).clone())
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The chart's directory.
pub fn chart() -> PathBuf {
    repo().join("charts/passport")
}

/// Runs tool `name` (`helm`, `kube-score`) with `args` in the repository; `kubeconfig` sets
/// KUBECONFIG.
pub fn run(name: &str, args: &[&str], kubeconfig: Option<&Path>) -> Result<Outcome> {
    let mut command = Command::new(dir()?.join(name));
    command.args(args).current_dir(repo());
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    // Helm's own state (repositories, plugins) in a scratch place, never the user's.
    let home = std::env::temp_dir().join("passport-tests-helm");
    for (var, sub) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ] {
        command.env(var, home.join(sub));
    }
    let output = command
        .output()
        .with_context(|| format!("running {name} {}", args.join(" ")))?;
    Ok(Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs tool `name` with `args` as [`run`] does, and returns its stdout if it succeeded.
pub fn checked(name: &str, args: &[&str], kubeconfig: Option<&Path>) -> Result<String> {
    let outcome = run(name, args, kubeconfig)?;
    anyhow::ensure!(
        outcome.success,
        "{name} {} failed: {}{}",
        args.join(" "),
        outcome.stdout,
        outcome.stderr.trim()
    );
    Ok(outcome.stdout)
}

/// `helm template` of the chart as release `passport` in `passport-system`, with `--set` values.
pub fn render(sets: &[&str]) -> Result<String> {
    let chart = chart();
    let mut args = vec![
        "template",
        "passport",
        chart.to_str().context("chart path")?,
        "--namespace",
        "passport-system",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    checked("helm", &args, None)
}

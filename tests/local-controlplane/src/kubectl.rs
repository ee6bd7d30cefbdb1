//! Running the machine's real `kubectl` as a given user, the way a person or a GitOps tool would.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context, Result};

/// What one kubectl invocation produced.
#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Fails with kubectl's own words unless it succeeded.
    pub fn ok(self) -> Result<Self> {
        anyhow::ensure!(self.success, "kubectl failed: {}", self.stderr.trim());
        Ok(self)
    }
}

/// Runs `kubectl --kubeconfig <kubeconfig> <args>`, feeding `stdin` when given.
pub fn run(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<Outcome> {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl (is it installed?)")?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    Ok(Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// `kubectl apply -f -` with the given manifest.
pub fn apply(kubeconfig: &Path, manifest: &str) -> Result<Outcome> {
    run(kubeconfig, &["apply", "-f", "-"], Some(manifest))
}

//! Running `kubectl-passport`, ssh and scp the way a person would: a user's kubeconfig, a cache
//! directory of the test's own, and the instance reachable directly (`PASSPORT_DIRECT_ENDPOINTS`).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use passport_tests::{binaries::workspace_binary, wait::eventually};
use tokio::process::Command;

/// What one process printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self, what: &str) -> Result<Self> {
        ensure!(
            self.code == Some(0),
            "{what} failed ({:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }

    /// Fails unless the process failed with exactly one stderr line starting with the plugin's prefix
    /// and containing `needle`.
    pub fn one_error_line(&self, needle: &str) -> Result<()> {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        ensure!(
            self.code.is_some_and(|c| c != 0),
            "expected a failure, got {:?}: {}",
            self.code,
            self.stdout
        );
        ensure!(
            lines.len() == 1
                && lines[0].starts_with("kubectl-passport: error: ")
                && lines[0].contains(needle),
            "expected one error line with {needle:?}, got:\n{}",
            self.stderr
        );
        Ok(())
    }
}

/// The plugin as one user on one workstation.
#[derive(Debug)]
pub struct Plugin {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub cache: tempfile::TempDir,
    /// `PASSPORT_DIRECT_ENDPOINTS`.
    pub direct: String,
}

impl Plugin {
    pub fn new(kubeconfig: PathBuf, namespace: &str, direct: String) -> Result<Self> {
        Ok(Self {
            bin: workspace_binary("kubectl-passport", "kubectl-passport")?,
            kubeconfig,
            namespace: namespace.to_owned(),
            cache: tempfile::Builder::new().prefix("passport-cli-cache-").tempdir()?,
            direct,
        })
    }

    /// Environment shared by the plugin and the ssh it runs (its ProxyCommand inherits it).
    pub fn env(&self, command: &mut Command) {
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("XDG_CACHE_HOME", self.cache.path())
            .env("PASSPORT_DIRECT_ENDPOINTS", &self.direct)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
    }

    /// `kubectl-passport -n <namespace> <args>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command.args(["-n", &self.namespace]).args(args);
        self.env(&mut command);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Result<Run> {
        output(self.command(args), 120).await
    }

    /// `ssh`/`scp` etc. with the plugin's environment.
    pub fn tool(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command.args(args);
        self.env(&mut command);
        command
    }

    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }
}

/// Runs `command` to completion within `timeout_secs`.
pub async fn output(mut command: Command, timeout_secs: u64) -> Result<Run> {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning")?;
    let out = tokio::time::timeout(Duration::from_secs(timeout_secs), child.wait_with_output())
        .await
        .context("timed out")??;
    Ok(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Retries `args` until it succeeds: a new RoleBinding takes a moment to reach the apiserver's
/// authorizer (its cache has no watch).
pub async fn until_allowed(plugin: &Plugin, args: &[&str]) -> Result<Run> {
    eventually(Duration::from_secs(30), || async {
        plugin.run(args).await?.ok(&args.join(" "))
    })
    .await
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Median and worst of some durations.
pub fn median_and_worst(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    (median, times.last().copied().unwrap_or_default())
}

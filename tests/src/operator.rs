//! The real `passport-operator` binary as a child process: its own least-privilege identity on the
//! local control plane, AWS through the emulator, logs in a file for failure messages.

use std::{
    fs,
    net::TcpListener,
    path::Path,
    process::{Child, Stdio},
    sync::Mutex,
    time::Duration,
};

use anyhow::{Result, bail};
use kube::config::Kubeconfig;
use local_controlplane::process::{self, Keeper, guarded, spawn_kept};

use crate::{ControlPlane, binaries::workspace_binary, kubectl};

/// The operator's service-account identity, as its RBAC in deploy/rbac.yaml names it.
pub const IDENTITY: &str = "system:serviceaccount:passport-system:passport-operator";
pub const GROUPS: [&str; 2] = ["system:serviceaccounts", "system:serviceaccounts:passport-system"];

#[derive(Debug)]
pub struct OperatorProcess {
    child: Mutex<Option<(Child, Keeper)>>,
    log: tempfile::NamedTempFile,
    http_port: u16,
}

impl OperatorProcess {
    /// Applies the operator's RBAC (idempotent) and starts it as its service account, with `env` added
    /// (e.g. the AWS emulator's endpoint and test credentials).
    pub fn start(plane: &ControlPlane, env: &[(&'static str, String)]) -> Result<Self> {
        Self::start_through(plane, env, None)
    }

    /// [`OperatorProcess::start`], but the operator reaches the apiserver at `api_server` (e.g.
    /// `https://127.0.0.1:PORT` of a proxy in front of it) instead of at its own address; the
    /// serving certificate covers any port on 127.0.0.1.
    pub fn start_through(
        plane: &ControlPlane,
        env: &[(&'static str, String)],
        api_server: Option<&str>,
    ) -> Result<Self> {
        Self::start_with(plane, env, api_server, &[], None)
    }

    /// [`OperatorProcess::start_through`] with `args` added to its command line (e.g.
    /// `--logbook-sink=URL`) and, with `stdout`, its stdout in that file instead of in the log.
    pub fn start_with(
        plane: &ControlPlane,
        env: &[(&'static str, String)],
        api_server: Option<&str>,
        args: &[String],
        stdout: Option<&Path>,
    ) -> Result<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let rbac = repo.join("deploy/rbac.yaml");
        kubectl::run(
            &plane.admin_kubeconfig(),
            &["apply", "-f", &rbac.to_string_lossy()],
            None,
        )?
        .ok()?;
        let mut kubeconfig = plane.kubeconfig_for(IDENTITY, &GROUPS)?;
        if let Some(server) = api_server {
            let mut config = Kubeconfig::read_from(&kubeconfig)?;
            for cluster in config.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
                cluster.server = Some(server.to_owned());
            }
            kubeconfig = plane.dir().join("passport-operator-through-proxy.kubeconfig");
            fs::write(&kubeconfig, serde_yaml::to_string(&config)?)?;
        }
        let http_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = tempfile::Builder::new()
            .prefix("passport-operator-")
            .suffix(".log")
            .tempfile()?;
        let binary = workspace_binary("passport-operator", "passport-operator")?;
        let mut command = guarded(&binary);
        command
            .args([
                "--http-addr",
                &format!("127.0.0.1:{http_port}"),
                "--namespace",
                "passport-system",
            ])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,passport_operator=debug,kube=warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(match stdout {
                Some(path) => fs::OpenOptions::new().create(true).append(true).open(path)?,
                None => log.reopen()?,
            })
            .stderr(log.reopen()?);
        let (child, keeper) = spawn_kept(command)?;
        Ok(Self {
            child: Mutex::new(Some((child, keeper))),
            log,
            http_port,
        })
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The process id while it runs (for a kill from outside, e.g. the AWS emulator's crash hook).
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(|(child, _)| child.id())
    }

    /// The last lines of the operator's log.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// How the operator exited, if it has (`None` while it runs or after [`OperatorProcess::kill`]).
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.lock()
            .as_mut()
            .and_then(|(child, _)| child.try_wait().ok().flatten())
    }

    /// Kills the operator at once, as a crash or an evicted pod would.
    pub fn kill(&self) {
        if let Some((mut child, _keeper)) = self.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `grace` for a clean exit; returns whether it exited successfully.
    pub fn terminate(&self, grace: Duration) -> Result<bool> {
        let Some((mut child, _keeper)) = self.lock().take() else {
            return Ok(false);
        };
        match process::terminate(&mut child, grace)? {
            Some(status) => Ok(status.success()),
            None => bail!("operator still running {grace:?} after SIGTERM"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Child, Keeper)>> {
        self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

//! A real Kubernetes control plane on loopback: etcd and kube-apiserver built from their official Go
//! modules (see `tests/controlplane/build.sh`), started the way controller-runtime's envtest starts
//! them, with RBAC authorization and client-certificate users. Dropping it kills both processes and
//! removes every file it wrote.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::{
    kubeconfig,
    pki::{self, Pki},
    process::{Keeper, guarded, spawn_kept},
};

/// A user the suite can act as: CN = name, O = groups.
#[derive(Debug, Clone, Copy)]
pub struct TestUser {
    pub name: &'static str,
    pub groups: &'static [&'static str],
}

/// The ordinary users every control plane has. They hold no rights until a test grants them some.
pub const USERS: [TestUser; 3] = [
    TestUser {
        name: "alice",
        groups: &["developers"],
    },
    TestUser {
        name: "bob",
        groups: &["developers"],
    },
    TestUser {
        name: "carol",
        groups: &["sre", "approvers"],
    },
];

const START_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug)]
pub struct ControlPlane {
    dir: tempfile::TempDir,
    pki: Pki,
    server: String,
    /// etcd then kube-apiserver; emptied by [`ControlPlane::stop`].
    processes: Mutex<Vec<(&'static str, Child, Keeper)>>,
}

impl ControlPlane {
    /// Builds the binaries if this machine has not yet (cached outside the repository), then starts
    /// etcd and kube-apiserver on free loopback ports and waits until the apiserver is ready.
    pub async fn start() -> Result<Self> {
        let bin = binaries_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("passport-controlplane-")
            .tempdir()?;
        let pki = Pki::new()?;
        let root = dir.path();
        let serving = pki.serving()?;
        write(root, "ca.crt", &pki.ca_pem())?;
        write(root, "apiserver.crt", &serving.cert_pem)?;
        write(root, "apiserver.key", &serving.key_pem)?;
        let (sa_private, sa_public) = pki::service_account_keys()?;
        write(root, "sa.key", &sa_private)?;
        write(root, "sa.pub", &sa_public)?;

        let [etcd_port, peer_port, api_port] = free_ports()?;
        let etcd = spawn(
            &bin.join("etcd"),
            &[
                "--name=default".to_owned(),
                format!("--data-dir={}", root.join("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
                "--unsafe-no-fsync=true".to_owned(),
                "--log-level=warn".to_owned(),
            ],
            &root.join("etcd.log"),
        )?;
        let server = format!("https://127.0.0.1:{api_port}");
        let path = |name: &str| root.join(name).display().to_string();
        let apiserver = spawn(
            &bin.join("kube-apiserver"),
            &[
                format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                format!("--secure-port={api_port}"),
                "--bind-address=127.0.0.1".to_owned(),
                "--advertise-address=127.0.0.1".to_owned(),
                format!("--cert-dir={}", path("certs")),
                format!("--tls-cert-file={}", path("apiserver.crt")),
                format!("--tls-private-key-file={}", path("apiserver.key")),
                format!("--client-ca-file={}", path("ca.crt")),
                "--authorization-mode=RBAC".to_owned(),
                "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
                format!("--service-account-issuer={server}"),
                format!("--service-account-key-file={}", path("sa.pub")),
                format!("--service-account-signing-key-file={}", path("sa.key")),
                // No kube-controller-manager runs, so nothing would create default service accounts.
                "--disable-admission-plugins=ServiceAccount".to_owned(),
                "--enable-priority-and-fairness=false".to_owned(),
                "--v=0".to_owned(),
            ],
            &root.join("kube-apiserver.log"),
        )?;
        let processes = Mutex::new(vec![
            ("etcd", etcd.0, etcd.1),
            ("kube-apiserver", apiserver.0, apiserver.1),
        ]);
        let plane = Self {
            dir,
            pki,
            server,
            processes,
        };
        plane.write_kubeconfigs()?;
        plane.wait_ready().await?;
        Ok(plane)
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kubeconfig of a cluster administrator (group system:masters).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir().join("admin.kubeconfig")
    }

    /// Kubeconfig of one of [`USERS`].
    pub fn user_kubeconfig(&self, user: &str) -> PathBuf {
        self.dir().join(format!("{user}.kubeconfig"))
    }

    /// Writes a kubeconfig for any identity, e.g. the operator's service account.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let cert = self.pki.client(user, groups)?;
        let file_name = format!("{}.kubeconfig", user.replace(':', "_"));
        let path = self.dir().join(file_name);
        let config = kubeconfig::render(&self.server, &self.pki.ca_pem(), user, &cert);
        fs::write(&path, serde_yaml::to_string(&config)?)?;
        Ok(path)
    }

    pub async fn admin_client(&self) -> Result<Client> {
        client_from(&self.admin_kubeconfig()).await
    }

    pub async fn user_client(&self, user: &str) -> Result<Client> {
        client_from(&self.user_kubeconfig(user)).await
    }

    fn write_kubeconfigs(&self) -> Result<()> {
        let admin = self.kubeconfig_for("admin", &["system:masters"])?;
        fs::rename(admin, self.admin_kubeconfig())?;
        for user in USERS {
            self.kubeconfig_for(user.name, user.groups)?;
        }
        Ok(())
    }

    async fn wait_ready(&self) -> Result<()> {
        let client = self.admin_client().await?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.ensure_running()?;
            let request = http::Request::get("/readyz").body(Vec::new())?;
            match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(body) => bail!("kube-apiserver not ready after {START_TIMEOUT:?}: {body}"),
                Err(err) => bail!("kube-apiserver not ready after {START_TIMEOUT:?}: {err}"),
            }
        }
    }

    fn ensure_running(&self) -> Result<()> {
        let mut processes = self
            .processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (name, child, _) in processes.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{name} exited with {status}; last lines of its log:\n{}",
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    /// Stops both processes and waits for them, so no process or port is left behind.
    pub fn stop(&self) {
        let mut processes = self
            .processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some((_, child, keeper)) = processes.pop() {
            stop_child(child);
            drop(keeper);
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

pub async fn client_from(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Where the control-plane binaries are: `PASSPORT_CONTROLPLANE_BIN`, or whatever the cached build
/// script reports (it builds them on first use).
pub fn binaries_dir() -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane/build.sh");
    crate::binaries::cached_build("PASSPORT_CONTROLPLANE_BIN", &script)
}

fn spawn(binary: &Path, args: &[String], log: &Path) -> Result<(Child, Keeper)> {
    let log_file = fs::File::create(log)?;
    let mut command = guarded(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    spawn_kept(command)
}

fn stop_child(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_ports<const N: usize>() -> Result<[u16; N]> {
    // Hold every listener until all ports are chosen so the kernel hands out distinct ones.
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()?;
    ports
        .try_into()
        .map_err(|_| anyhow::anyhow!("port count mismatch"))
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<()> {
    fs::write(dir.join(name), contents).with_context(|| format!("writing {name}"))
}

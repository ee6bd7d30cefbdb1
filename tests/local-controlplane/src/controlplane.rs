//! A real Kubernetes control plane on loopback: etcd and kube-apiserver (see [`crate::binaries`]),
//! started the way controller-runtime's envtest starts them, with RBAC authorization and
//! client-certificate users; on request also kube-controller-manager with only the namespace and
//! garbage-collector controllers. Dropping it kills every process and removes every file it wrote.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::Mutex,
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::{
    binaries, kubeconfig,
    pki::{self, Pki},
    process::{self, Keeper, guarded, spawn_kept},
    wait::{eventually, give_up},
    workloads,
};

/// A user tests act as: a client certificate with CN = name and one O per group (at most two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn new(name: impl Into<String>, groups: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            name: name.into(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }
}

/// How to start a [`ControlPlane`]; made by [`ControlPlane::options`].
#[derive(Debug, Clone)]
pub struct Options {
    binaries: Option<PathBuf>,
    cluster_name: String,
    users: Vec<User>,
    start_timeout: Duration,
    controller_manager: bool,
    workloads: bool,
}

impl Options {
    /// The directory holding `etcd`, `kube-apiserver` (and `kube-controller-manager` if run); by default [`binaries::default_dir`].
    pub fn binaries(mut self, dir: impl Into<PathBuf>) -> Self {
        self.binaries = Some(dir.into());
        self
    }

    /// The cluster's name in kubeconfigs (contexts are `<user>@<cluster>`); default `local`.
    pub fn cluster_name(mut self, name: impl Into<String>) -> Self {
        self.cluster_name = name.into();
        self
    }

    /// The users to write kubeconfigs for at start (each holds no rights until a test grants some);
    /// others can be had later through [`ControlPlane::kubeconfig_for`].
    pub fn users(mut self, users: impl IntoIterator<Item = User>) -> Self {
        self.users = users.into_iter().collect();
        self
    }

    /// Also runs kube-controller-manager (from the same binaries directory) with only the namespace
    /// and garbage-collector controllers, as a cluster administrator: deleted namespaces then finish
    /// terminating (their objects deleted, finalizers honoured) and owner references are collected.
    /// Off by default: nothing else of a cluster's controllers runs.
    pub fn controller_manager(mut self, enabled: bool) -> Self {
        self.controller_manager = enabled;
        self
    }

    /// Runs workloads as far as the API shows: kube-scheduler, kube-controller-manager with the
    /// deployment and replicaset controllers too, and kwok with one fake node (see
    /// [`crate::workloads`]), so a Deployment's pods are scheduled, "run" and become Ready, and the
    /// Deployment Available. Needs `kube-scheduler`, `kwok` and `kwok-stages.yaml` in the binaries
    /// directory. Off by default.
    pub fn workloads(mut self, enabled: bool) -> Self {
        self.workloads = enabled;
        self
    }

    /// How long etcd and kube-apiserver may take to become ready; default 90s.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts etcd and kube-apiserver on free loopback ports and waits until the apiserver is ready.
    pub async fn start(self) -> Result<ControlPlane> {
        let bin = match self.binaries.clone() {
            Some(dir) => dir,
            None => tokio::task::spawn_blocking(binaries::default_dir).await??,
        };
        let dir = tempfile::Builder::new().prefix("local-controlplane-").tempdir()?;
        let pki = Pki::new(&format!("{}-ca", self.cluster_name))?;
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
        let plane = ControlPlane {
            dir,
            pki,
            server,
            cluster_name: self.cluster_name,
            users: self.users,
            processes,
        };
        plane.write_kubeconfigs()?;
        plane.wait_ready(self.start_timeout).await?;
        if self.workloads {
            plane.start_controller_manager(&bin, workloads::CONTROLLERS)?;
            plane.start_workloads(&bin).await?;
        } else if self.controller_manager {
            plane.start_controller_manager(&bin, "garbagecollector,namespace")?;
        }
        Ok(plane)
    }
}

#[derive(Debug)]
pub struct ControlPlane {
    dir: tempfile::TempDir,
    pki: Pki,
    server: String,
    cluster_name: String,
    users: Vec<User>,
    /// etcd, kube-apiserver, then the others asked for; emptied (last first) by
    /// [`ControlPlane::stop`].
    processes: Mutex<Vec<(&'static str, Child, Keeper)>>,
}

impl ControlPlane {
    /// Options to start one with: no users but the administrator, binaries from
    /// [`binaries::default_dir`], cluster name `local`.
    pub fn options() -> Options {
        Options {
            binaries: None,
            cluster_name: "local".to_owned(),
            users: Vec::new(),
            start_timeout: Duration::from_secs(90),
            controller_manager: false,
            workloads: false,
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The users it was started with (see [`Options::users`]).
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Kubeconfig of a cluster administrator (group system:masters).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir().join("admin.kubeconfig")
    }

    /// Kubeconfig of one of the users it was started with.
    pub fn user_kubeconfig(&self, user: &str) -> PathBuf {
        self.dir().join(format!("{user}.kubeconfig"))
    }

    /// Writes a kubeconfig for any identity, e.g. a controller's service account.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let cert = self.pki.client(user, groups)?;
        let file_name = format!("{}.kubeconfig", user.replace(':', "_"));
        let path = self.dir().join(file_name);
        let config = kubeconfig::render(&self.cluster_name, &self.server, &self.pki.ca_pem(), user, &cert);
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
        for user in &self.users {
            let groups: Vec<&str> = user.groups.iter().map(String::as_str).collect();
            self.kubeconfig_for(&user.name, &groups)?;
        }
        Ok(())
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let client = &self.admin_client().await?;
        eventually(timeout, move || async move {
            self.ensure_running().map_err(give_up)?;
            let request = http::Request::get("/readyz").body(Vec::new())?;
            let body = client.request_text(request).await?;
            ensure!(body.trim() == "ok", "kube-apiserver not ready: {body}");
            Ok(())
        })
        .await
    }

    /// kube-controller-manager with only `controllers` (comma-separated), as
    /// `system:kube-controller-manager` in group `system:masters` (the garbage collector deletes any
    /// kind). No serving port, no leader election: it is the only one.
    fn start_controller_manager(&self, bin: &Path, controllers: &str) -> Result<()> {
        let kubeconfig = self.kubeconfig_for("system:kube-controller-manager", &["system:masters"])?;
        self.run(
            "kube-controller-manager",
            &bin.join("kube-controller-manager"),
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--controllers={controllers}"),
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
                "--use-service-account-credentials=false".to_owned(),
                "--v=0".to_owned(),
            ],
        )
    }

    /// Runs `binary` with `args` as one of the control plane's processes (stopped with it), its
    /// output in `<name>.log`. Processes without a health endpoint: an early exit (bad flags, no
    /// binary) is caught here, later ones by [`ControlPlane::ensure_running`] and the caller's waits.
    pub(crate) fn run(&self, name: &'static str, binary: &Path, args: &[String]) -> Result<()> {
        let (child, keeper) = spawn(binary, args, &self.dir().join(format!("{name}.log")))?;
        self.processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((name, child, keeper));
        std::thread::sleep(Duration::from_millis(300));
        self.ensure_running()
    }

    /// Whether kube-controller-manager was started and still runs.
    pub fn controller_manager_running(&self) -> bool {
        self.ensure_running().is_ok()
            && self
                .processes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .any(|(name, _, _)| *name == "kube-controller-manager")
    }

    /// Fails, with the last lines of its log, if any of its processes has exited.
    pub fn ensure_running(&self) -> Result<()> {
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

    /// Stops every process (the last started first) and waits for them, so no process or port is
    /// left behind.
    pub fn stop(&self) {
        let mut processes = self
            .processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some((_, mut child, keeper)) = processes.pop() {
            let _ = process::terminate(&mut child, Duration::from_secs(5));
            drop(keeper);
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client as the kubeconfig at `path` describes it.
pub async fn client_from(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
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

pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N]> {
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

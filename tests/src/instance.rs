//! A local stand-in for a Linux EC2 instance: Debian's real OpenSSH server on loopback, in a Debian
//! bookworm root filesystem, isolated from the host so that whatever scripts do to it (users, homes,
//! sshd configuration, killed processes) happens only inside the instance.
//!
//! How it is isolated:
//! - The root filesystem is built once per machine by `tests/instance/build-rootfs.sh` (debootstrap,
//!   cached outside the repository) and is only ever the read-only lower layer of an overlay.
//! - Each instance runs in its own PID, mount, UTS and IPC namespaces (`unshare`, see
//!   `tests/instance/start.sh`). Its writable layer is a tmpfs mounted inside its mount namespace, so
//!   no mount is visible on the host and nothing it writes reaches the host's disk: `/etc/passwd`,
//!   `/home` and `/etc/ssh` inside are the instance's own. sshd is the namespace's PID 1, chrooted into
//!   the overlay; `pkill -u`, `kill -1` and `/proc` inside reach only the instance's processes.
//! - The network is the host's: sshd listens on a free port of 127.0.0.1.
//! - [`Instance::stop`] (and `Drop`) kills sshd; as PID 1 of the namespace its death kills every
//!   other process in it, and when the last one is gone the kernel drops the mount namespace with all
//!   its mounts. Should the test process die without running `Drop`, `setpriv --pdeathsig` and
//!   `unshare --kill-child` make the kernel do the same.
//!
//! Users inside share the kernel's uid space with the host (there is no user namespace, as on a real
//! machine root is real root); isolation comes from the separate files and the separate PID namespace.
//!
//! Needs root and, on the host, util-linux (`unshare`, `nsenter`, `setpriv`) and, for the first
//! build of the root filesystem, `debootstrap` (see `scripts/install-deps.sh`).

use std::{
    fs,
    io::{BufRead, BufReader},
    net::TcpListener,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use local_controlplane::{binaries::cached_build, eventually, eventually_blocking, give_up};

/// How long the instance may take from `unshare` to sshd answering with its banner.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long stopping may take before the harness gives up waiting (it never has in practice).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The PATH of a systemd service, which is what the SSM agent and the scripts it runs see.
const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Exit code and stderr prefix of `run-as-ssm-agent.sh` when it fails before the script ran.
const RUNNER_FAILURE_CODE: i32 = 125;
const RUNNER_FAILURE_PREFIX: &str = "run-as-ssm-agent: ";

/// What one script or command run inside the instance produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOutcome {
    /// The exit code; 128+N when signal N ended the process.
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptOutcome {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// Fails with the script's own output unless it exited with 0.
    pub fn ok(self) -> Result<Self> {
        ensure!(
            self.success(),
            "exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.exit_code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        );
        Ok(self)
    }
}

/// One running instance. See the module documentation.
#[derive(Debug)]
pub struct Instance {
    id: String,
    port: u16,
    host_pid: u32,
    root: PathBuf,
    host_keys: Vec<String>,
    /// The sshd log and the (host-side empty) mount point of the writable layer; removed on drop.
    dir: tempfile::TempDir,
    scripts: AtomicU32,
    /// The thread that started the instance and stops it; taken by [`Instance::stop`].
    keeper: Mutex<Option<Keeper>>,
}

#[derive(Debug)]
struct Keeper {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Instance {
    /// Builds the root filesystem if this machine has not yet (cached; `PASSPORT_INSTANCE_ROOTFS`
    /// names a ready one instead), then boots an instance: fresh host keys, sshd on a free loopback
    /// port. Returns once sshd answers with its banner.
    pub async fn start() -> Result<Self> {
        Self::start_with_sshd_options(&[]).await
    }

    /// [`Instance::start`] with extra sshd options (`Keyword=value`, as `sshd -o` takes them), e.g.
    /// `CASignatureAlgorithms=ssh-rsa` for a server that, like OpenSSH before 8.2, takes only SHA-1
    /// CA signatures. They win over sshd_config, also after the scripts edit it.
    pub async fn start_with_sshd_options(options: &[&str]) -> Result<Self> {
        ensure_root()?;
        let rootfs = tokio::task::spawn_blocking(rootfs_dir).await??;
        ensure!(
            rootfs.join("usr/sbin/sshd").is_file(),
            "{} is not an instance root filesystem (no usr/sbin/sshd)",
            rootfs.display()
        );
        let mut attempt = 1;
        loop {
            match Self::boot(&rootfs, options).await {
                Ok(instance) => return Ok(instance),
                // Free ports are chosen before sshd binds; another process may take one meanwhile.
                Err(err) if attempt < 3 && format!("{err:#}").contains("Address already in use") => {
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn boot(rootfs: &Path, sshd_options: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("passport-instance-").tempdir()?;
        let mount_point = dir.path().join("mnt");
        fs::create_dir(&mount_point)?;
        fs::create_dir(dir.path().join("scripts"))?;
        let log = dir.path().join("sshd.log");
        let id = new_instance_id()?;
        let port = free_port()?;

        let mut command = Command::new("setpriv");
        // --pdeathsig: the kernel kills unshare when the keeper thread dies (a killed test run), and
        // --kill-child then kills the instance's PID 1, which takes the whole namespace with it.
        command
            .args([
                "--pdeathsig=KILL",
                "--",
                "unshare",
                "--fork",
                "--kill-child",
                "--pid",
                "--mount",
            ])
            .args(["--uts", "--ipc", "--propagation=private", "--", "bash"])
            .arg(script_path("start.sh"))
            .arg(rootfs)
            .arg(&mount_point)
            .arg(port.to_string())
            .arg(&id)
            .args(sshd_options.iter().flat_map(|option| ["-o", option]))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?);

        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = mpsc::channel();
        let exited = Arc::new(Mutex::new(None));
        let thread = {
            let (id, log, exited) = (id.clone(), log.clone(), exited.clone());
            std::thread::Builder::new()
                .name(format!("instance-{id}"))
                .spawn(move || keep(command, &id, &log, started_tx, &stop_rx, &exited))?
        };
        let keeper = Keeper {
            stop: stop_tx,
            thread,
        };
        let host_pid = match started_rx.await {
            Ok(Ok(pid)) => pid,
            Ok(Err(err)) => {
                keeper.shut_down();
                return Err(err);
            }
            Err(_) => {
                keeper.shut_down();
                bail!(
                    "the instance's keeper thread ended unexpectedly; log:\n{}",
                    log_tail(&log)
                );
            }
        };

        let mut instance = Self {
            root: PathBuf::from(format!("/proc/{host_pid}/root")),
            id,
            port,
            host_pid,
            host_keys: Vec::new(),
            dir,
            scripts: AtomicU32::new(0),
            keeper: Mutex::new(Some(keeper)),
        };
        // On any error below, dropping `instance` stops it.
        instance.wait_for_banner(&exited).await?;
        instance.host_keys = instance.read_host_keys()?;
        Ok(instance)
    }

    async fn wait_for_banner(&self, exited: &Mutex<Option<ExitStatus>>) -> Result<()> {
        eventually(START_TIMEOUT, || async {
            if let Some(status) = *exited.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) {
                return Err(give_up(anyhow!(
                    "the instance's sshd exited with {status}; its log:\n{}",
                    self.log_tail()
                )));
            }
            let banner = crate::ssh::banner(self.port).await;
            ensure!(
                banner.as_deref().is_ok_and(|b| b.starts_with("SSH-2.0-")),
                "the instance's sshd does not answer ({banner:?}); its log:\n{}",
                self.log_tail()
            );
            Ok(())
        })
        .await
    }

    fn read_host_keys(&self) -> Result<Vec<String>> {
        let ssh_dir = self.root.join("etc/ssh");
        let mut files: Vec<PathBuf> = fs::read_dir(&ssh_dir)
            .with_context(|| format!("reading {}", ssh_dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("ssh_host_") && name.ends_with("_key.pub")
            })
            .collect();
        files.sort();
        let mut keys = Vec::new();
        for file in files {
            let text = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(str::to_owned),
            );
        }
        ensure!(!keys.is_empty(), "the instance has no host keys in /etc/ssh");
        Ok(keys)
    }

    /// The instance id, `i-` and 17 hex digits like EC2's; also the instance's hostname and the
    /// directory name the SSM agent would use under `/var/lib/amazon/ssm`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The loopback port sshd listens on (127.0.0.1 only).
    pub fn ssh_port(&self) -> u16 {
        self.port
    }

    /// The instance's host public keys as in its `/etc/ssh/ssh_host_*_key.pub` (`<type> <base64>
    /// <comment>`), generated when it started, sorted by file name.
    pub fn host_keys(&self) -> Vec<String> {
        self.host_keys.clone()
    }

    /// `known_hosts` content pinning this instance: one `[127.0.0.1]:<port> <type> <base64>` line per
    /// host key.
    pub fn known_hosts(&self) -> String {
        crate::ssh::known_hosts(self.port, &self.host_keys)
    }

    /// The instance's root directory as the host sees it: `/proc/<sshd's host pid>/root`. Reading
    /// through it works as root while the instance runs. Beware of absolute symlinks inside the
    /// instance (e.g. `/var/run -> /run`): the host resolves them against its own root, so prefer
    /// [`Instance::exec`] for anything but plain files and directories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// sshd's PID as the host sees it: PID 1 of the instance's PID namespace.
    pub fn host_pid(&self) -> u32 {
        self.host_pid
    }

    /// The instance's directory on the host: `sshd.log` (sshd's log, `-e`), the scripts handed to
    /// [`Instance::run_script`], and `mnt`, where the writable layer is mounted inside the
    /// instance's mount namespace (empty as seen from the host). Removed when the instance stops.
    pub fn host_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of sshd's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("sshd.log"))
    }

    /// The argv prefix of the SSM-agent stand-in for this instance: append ONE argument, the host
    /// path of a file holding the commands, and run it. Contract (see
    /// `tests/instance/run-as-ssm-agent.sh`):
    ///
    /// - It runs the file the way the Amazon SSM agent runs `AWS-RunShellScript` on Linux, inside the
    ///   instance: the file is copied to
    ///   `/var/lib/amazon/ssm/<id>/document/orchestration/<command-id>/awsrunShellScript/0.awsrunShellScript/_script.sh`
    ///   (mode 0700) and run as root with `sh -c <that path>` (so a shebang line decides the
    ///   interpreter), stdin `/dev/null`, in a process group and session of its own, working directory
    ///   `/usr/bin`, environment: a systemd service's `PATH`, `LANG=C.UTF-8`, `AWS_SSM_INSTANCE_ID`,
    ///   `AWS_SSM_REGION_NAME`.
    /// - Its stdout and stderr are the script's complete stdout and stderr (written to files next to
    ///   the script first, as the agent does, then printed; no truncation), and its exit code is the
    ///   script's (128+N when signal N ended the script).
    /// - If it fails before the script ran (instance not running, bad arguments) it prints a line
    ///   starting with `run-as-ssm-agent: ` on stderr and exits with 125.
    /// - Environment it reads: `PASSPORT_SSM_COMMAND_ID` (default: a fresh UUID) and
    ///   `AWS_SSM_REGION_NAME` (default `us-east-1`). It needs root.
    /// - Killing it (SIGKILL is fine) also kills the script's shell, not what the script put in the
    ///   background. Nothing ties it to the thread or process that spawned it, so a caller may spawn it
    ///   and return at once (as `SendCommand` does); stopping the instance kills whatever still runs
    ///   inside. It never enters anything but this instance: a recycled PID is detected and refused.
    pub fn runner_argv(&self) -> Vec<String> {
        vec![
            "bash".to_owned(),
            script_path("run-as-ssm-agent.sh").display().to_string(),
            self.host_pid.to_string(),
            self.id.clone(),
        ]
    }

    /// Runs `script` inside the instance exactly as the SSM agent runs an `AWS-RunShellScript`
    /// command (see [`Instance::runner_argv`]). A non-zero exit of the script is an `Ok` outcome; an
    /// `Err` means the script could not be run.
    pub async fn run_script(&self, script: &str) -> Result<ScriptOutcome> {
        let number = self.scripts.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join("scripts").join(format!("{number}.sh"));
        tokio::fs::write(&path, script)
            .await
            .with_context(|| format!("writing {}", path.display()))?;
        let argv = self.runner_argv();
        let outcome = output(tokio::process::Command::new(&argv[0]).args(&argv[1..]).arg(&path)).await?;
        if outcome.exit_code == RUNNER_FAILURE_CODE && outcome.stderr.starts_with(RUNNER_FAILURE_PREFIX) {
            bail!(
                "could not run the script in instance {}: {}",
                self.id,
                outcome.stderr.trim()
            );
        }
        Ok(outcome)
    }

    /// Runs a command inside the instance (its namespaces and root, working directory `/`) as root
    /// with a clean environment (a systemd service's `PATH` only), for assertions such as
    /// `["id", "rs-1234abcd"]`, `["getent", "passwd"]` or `["pgrep", "-u", "rs-1234abcd"]`.
    pub async fn exec(&self, argv: &[&str]) -> Result<ScriptOutcome> {
        ensure!(!argv.is_empty(), "exec needs a command");
        ensure!(self.is_running(), "instance {} is not running", self.id);
        let mut command = tokio::process::Command::new("nsenter");
        command
            .arg(format!("--target={}", self.host_pid))
            .args([
                "--mount",
                "--pid",
                "--uts",
                "--ipc",
                "--root",
                "--wd",
                "--",
                "/usr/bin/env",
                "-i",
            ])
            .arg(format!("PATH={SERVICE_PATH}"))
            .args(argv);
        output(&mut command).await
    }

    /// Whether the instance's sshd is still the process at its host PID.
    pub fn is_running(&self) -> bool {
        instance_at(self.host_pid, &self.id)
    }

    /// Kills sshd and with it every process of the instance, waits until they are gone (and with
    /// them the instance's mounts), and returns. Idempotent; `Drop` calls it. The host directory is
    /// removed when the `Instance` is dropped.
    pub fn stop(&self) {
        let keeper = self
            .keeper
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(keeper) = keeper {
            keeper.shut_down();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Keeper {
    fn shut_down(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// The keeper thread: starts the instance, reports its PID, and on request (or when the `Instance`
/// is gone) stops it. It must be this long-lived thread that spawns `setpriv --pdeathsig`: the kernel
/// sends the signal when the spawning *thread* ends, not the process.
fn keep(
    mut command: Command,
    id: &str,
    log: &Path,
    started: tokio::sync::oneshot::Sender<Result<u32>>,
    stop: &mpsc::Receiver<()>,
    exited: &Mutex<Option<ExitStatus>>,
) {
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let err = anyhow::Error::new(err)
                .context("starting the instance (setpriv and unshare, from util-linux)");
            let _ = started.send(Err(err));
            return;
        }
    };
    let host_pid = match read_start_report(&mut child) {
        Ok(pid) => pid,
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = started.send(Err(
                err.context(format!("starting the instance; its log:\n{}", log_tail(log)))
            ));
            return;
        }
    };
    if started.send(Ok(host_pid)).is_ok() {
        loop {
            match stop.recv_timeout(Duration::from_millis(200)) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        *exited.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(status);
                        return;
                    }
                }
            }
        }
    }
    shut_down(&mut child, host_pid, id);
}

/// Reads start.sh's report from its stdout ("pid N", then "ready"), within [`START_TIMEOUT`].
fn read_start_report(child: &mut Child) -> Result<u32> {
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let (lines_tx, lines_rx) = mpsc::channel();
    // A reader of its own, so a hung start cannot hang the keeper; it ends at EOF, when unshare exits.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut pid = None;
    loop {
        let timeout = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(timeout) {
            Ok(line) if line == "ready" => return pid.context("start.sh reported ready without its pid"),
            Ok(line) => {
                if let Some(number) = line.strip_prefix("pid ") {
                    pid = Some(
                        number
                            .trim()
                            .parse()
                            .with_context(|| format!("bad pid line {line:?}"))?,
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!("start.sh did not finish within {START_TIMEOUT:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("start.sh failed"),
        }
    }
}

/// Kills the instance's PID 1 (sshd), which makes the kernel kill every process in its PID namespace;
/// unshare exits once all of them are gone, and with them the mount namespace and its mounts.
fn shut_down(child: &mut Child, host_pid: u32, id: &str) {
    // Only while unshare runs can `host_pid` still be the instance (it reaps it), and the check
    // against the instance's own marker rules out a recycled PID.
    if matches!(child.try_wait(), Ok(None)) && instance_at(host_pid, id) {
        let _ = Command::new("kill")
            .args(["-KILL", &host_pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let unshare_exited = eventually_blocking(STOP_TIMEOUT, || match child.try_wait() {
        Ok(Some(_)) | Err(_) => Ok(()),
        Ok(None) => bail!("unshare still runs"),
    });
    if unshare_exited.is_err() {
        // unshare's death makes the kernel SIGKILL the instance's PID 1 (--kill-child).
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = eventually_blocking(STOP_TIMEOUT, || {
        ensure!(!instance_at(host_pid, id), "the instance's PID 1 still runs");
        Ok(())
    });
}

/// Whether the process at `pid` is the PID 1 of instance `id` (start.sh writes the id to /run).
fn instance_at(pid: u32, id: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/root/run/passport-instance")).is_ok_and(|text| text.trim() == id)
}

async fn output(command: &mut tokio::process::Command) -> Result<ScriptOutcome> {
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .context("running nsenter (util-linux)")?;
    Ok(ScriptOutcome {
        exit_code: exit_code(output.status),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

/// Where the instance root filesystem is: `PASSPORT_INSTANCE_ROOTFS`, or whatever the cached build
/// script reports (it builds it on first use, about a minute).
pub fn rootfs_dir() -> Result<PathBuf> {
    cached_build("PASSPORT_INSTANCE_ROOTFS", &script_path("build-rootfs.sh"))
}

fn script_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("instance").join(name)
}

fn ensure_root() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("no Uid line in /proc/self/status")?;
    ensure!(
        euid == "0",
        "the test instance needs root (it creates PID and mount namespaces)"
    );
    Ok(())
}

/// `i-` and 17 random hex digits.
fn new_instance_id() -> Result<String> {
    let uuid = fs::read_to_string("/proc/sys/kernel/random/uuid")?;
    let hex: String = uuid.chars().filter(char::is_ascii_hexdigit).take(17).collect();
    ensure!(hex.len() == 17, "unexpected uuid {uuid:?}");
    Ok(format!("i-{hex}"))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

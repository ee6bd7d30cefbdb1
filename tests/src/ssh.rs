//! The real OpenSSH client against a test instance: a fresh user key, a certificate signed with
//! `ssh-keygen -s` by a CA private key, host keys pinned (no trust on first use).

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{Context, Result};
use local_controlplane::process::checked_output;
use tokio::process::{Child, Command};

use kube::ResourceExt;
use passport_crds::AccessRequest;

use crate::instance::Instance;

/// A workstation's view of one instance: key pair, certificate and known_hosts in a temp dir.
#[derive(Debug)]
pub struct SshClient {
    dir: tempfile::TempDir,
    user: String,
    port: u16,
}

impl SshClient {
    /// Makes an Ed25519 key and has `ca_private_key` (OpenSSH format) certify it as the operator
    /// would for the Active AccessRequest `request`: its principal ([`request_principal`]), to log
    /// in as its `status.username`, valid for `validity` (an ssh-keygen `-V` interval such as
    /// `-1m:+10m`).
    pub async fn new(
        instance: &Instance,
        ca_private_key: &[u8],
        request: &AccessRequest,
        validity: &str,
    ) -> Result<Self> {
        let user = request
            .status
            .as_ref()
            .and_then(|s| s.username.as_deref())
            .context("the AccessRequest has no status.username")?;
        let principal = request_principal(&request.uid().context("the AccessRequest has no uid")?);
        let dir = tempfile::Builder::new().prefix("passport-ssh-").tempdir()?;
        let key = dir.path().join("id_ed25519");
        generate_key(&key, &["-t", "ed25519"]).await?;
        let ca = dir.path().join("ca");
        std::fs::write(&ca, ca_private_key)?;
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o600))?;
        let mut sign = Command::new("ssh-keygen");
        sign.args(["-q", "-s"])
            .arg(&ca)
            .args(["-I", "passport-e2e", "-n", &principal, "-V", validity])
            .arg(key.with_extension("pub"));
        checked_output(&mut sign, SSH_KEYGEN).await?;
        std::fs::remove_file(&ca)?;
        std::fs::write(dir.path().join("known_hosts"), instance.known_hosts())?;
        Ok(Self {
            dir,
            user: user.to_owned(),
            port: instance.ssh_port(),
        })
    }

    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("id_ed25519-cert.pub")
    }

    /// `ssh` with this identity, pinned host keys and no config file, ready for a remote command.
    pub fn command(&self, remote: &str) -> Command {
        let path = |name: &str| self.dir.path().join(name);
        pinned_command(
            &path("id_ed25519"),
            Some(&self.certificate()),
            &path("known_hosts"),
            &self.user,
            self.port,
            remote,
        )
    }

    /// Runs `remote` over SSH; returns (success, stdout, stderr).
    pub async fn run(&self, remote: &str) -> Result<(bool, String, String)> {
        let output = self.command(remote).output().await.context("running ssh")?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// Opens a session that stays open (`sleep`), as an engineer's shell would.
    pub fn hold_open(&self) -> Result<Child> {
        self.command("sleep 600")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning ssh")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The principal of the certificates of the AccessRequest with UID `uid`, which an instance accepts
/// for the OS user while that request holds it there: `passport-<uid>` (what
/// `passport_core::ssh_ca::request_principal` makes; the e2e logins would fail if they differed).
pub fn request_principal(uid: &str) -> String {
    format!("passport-{uid}")
}

/// `ssh user@127.0.0.1 -p port remote` with exactly this key (and certificate, when given), host keys
/// pinned by `known_hosts` alone (no trust on first use, no global file), no config file and no
/// prompts.
pub fn pinned_command(
    key: &Path,
    certificate: Option<&Path>,
    known_hosts: &Path,
    user: &str,
    port: u16,
    remote: &str,
) -> Command {
    let mut ssh = Command::new("ssh");
    ssh.args(["-F", "/dev/null", "-i"]).arg(key);
    if let Some(certificate) = certificate {
        ssh.arg("-o")
            .arg(format!("CertificateFile={}", certificate.display()));
    }
    ssh.arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "ConnectTimeout=10", "-p", &port.to_string()])
        .arg(format!("{user}@127.0.0.1"))
        .arg(remote)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    ssh
}

/// `known_hosts` lines pinning `host_keys` (`<type> <base64> [comment]`) for 127.0.0.1:`port`.
pub fn known_hosts(port: u16, host_keys: &[String]) -> String {
    host_keys
        .iter()
        .map(|key| {
            let key: Vec<&str> = key.split_whitespace().take(2).collect();
            format!("[127.0.0.1]:{port} {}\n", key.join(" "))
        })
        .collect()
}

/// A passphrase-less key pair at `path` (and `path.pub`), of the type `key_args` asks ssh-keygen for.
pub async fn generate_key(path: &Path, key_args: &[&str]) -> Result<()> {
    let mut keygen = Command::new("ssh-keygen");
    keygen
        .args(["-q", "-N", "", "-C", "e2e@workstation"])
        .args(key_args)
        .arg("-f")
        .arg(path);
    checked_output(&mut keygen, SSH_KEYGEN).await.map(drop)
}

const SSH_KEYGEN: &str = "ssh-keygen (openssh-client)";

/// The first bytes the server at 127.0.0.1:`port` sends, such as an SSH banner.
pub async fn banner(port: u16) -> Result<String> {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut buffer = vec![0; 256];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer)).await??;
    Ok(String::from_utf8_lossy(&buffer[..read]).into_owned())
}

//! The test's workstation: a key pair made by the real `ssh-keygen`, an age identity to unseal with,
//! the real `ssh` to log in with an issued certificate, and `ssh-keygen -L` to read one.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result};
use jiff::Timestamp;
use passport_crds::{CredentialRequestSpec, KeyType};
use passport_tests::{instance::Instance, local_controlplane::process::checked_output};

/// A workstation: a key pair made by `ssh-keygen`, and an age identity to unseal with.
pub struct Workstation {
    dir: tempfile::TempDir,
    key: PathBuf,
    identity: age::x25519::Identity,
}

impl Workstation {
    pub async fn new(key_type: KeyType) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("passport-creds-").tempdir()?;
        let (file, args): (&str, &[&str]) = match key_type {
            KeyType::Ed25519 => ("id_ed25519", &["-t", "ed25519"]),
            KeyType::Rsa => ("id_rsa", &["-t", "rsa", "-b", "3072"]),
        };
        let key = dir.path().join(file);
        passport_tests::ssh::generate_key(&key, args).await?;
        Ok(Self {
            dir,
            key,
            identity: age::x25519::Identity::generate(),
        })
    }

    pub fn public_key(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.key.with_extension("pub"))?
            .trim()
            .to_owned())
    }

    pub fn spec(
        &self,
        access_request: &str,
        requester: &str,
        key_type: KeyType,
    ) -> Result<CredentialRequestSpec> {
        Ok(CredentialRequestSpec {
            access_request: access_request.into(),
            requester: requester.into(),
            public_key: self.public_key()?,
            key_type,
            sealing_key: self.identity.to_public().to_string(),
        })
    }

    pub fn unseal(&self, ciphertext: &str) -> Result<Vec<u8>> {
        age::decrypt(&self.identity, ciphertext.as_bytes())
            .context("unsealing with the workstation's identity")
    }

    /// Writes `certificate` next to the key and logs in with it, host keys pinned from `host_keys`.
    pub async fn ssh(
        &self,
        instance: &Instance,
        user: &str,
        certificate: &str,
        host_keys: &[String],
    ) -> Result<String> {
        let cert = self.dir.path().join(format!(
            "{}-cert-{}.pub",
            self.key.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
            rand_suffix()
        ));
        std::fs::write(&cert, format!("{certificate}\n"))?;
        let known_hosts = self.dir.path().join("known_hosts");
        let lines = passport_tests::ssh::known_hosts(instance.ssh_port(), host_keys);
        std::fs::write(&known_hosts, lines)?;
        let mut ssh = passport_tests::ssh::pinned_command(
            &self.key,
            Some(&cert),
            &known_hosts,
            user,
            instance.ssh_port(),
            "whoami",
        );
        let output = checked_output(&mut ssh, "ssh with the issued certificate")
            .await
            .with_context(|| format!("sshd log:\n{}", instance.log_tail()))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// `ssh-keygen -L` of a certificate, in UTC.
    pub async fn describe(&self, certificate: &str) -> Result<String> {
        let path = self.dir.path().join(format!("describe-{}.pub", rand_suffix()));
        std::fs::write(&path, format!("{certificate}\n"))?;
        let mut describe = tokio::process::Command::new("ssh-keygen");
        describe.env("TZ", "UTC").arg("-L").arg("-f").arg(&path);
        let output = checked_output(&mut describe, "ssh-keygen -L").await?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A fresh file name suffix.
fn rand_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

pub fn principals(described: &str) -> Vec<&str> {
    let mut lines = described
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Principals:"));
    lines.next();
    lines
        .take_while(|l| !l.trim_start().starts_with("Critical Options:"))
        .map(str::trim)
        .collect()
}

pub fn field<'a>(described: &'a str, name: &str) -> Option<&'a str> {
    described
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(name))
        .map(str::trim)
}

/// The end of `Valid: from X to Y` (UTC, since `describe` runs with TZ=UTC).
pub fn valid_to(described: &str) -> Result<Timestamp> {
    let valid = field(described, "Valid:").context("no Valid: line")?;
    let to = valid.rsplit(" to ").next().context("no end of validity")?;
    let civil: jiff::civil::DateTime = to.parse()?;
    Ok(civil.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}

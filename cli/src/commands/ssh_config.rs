//! `ssh-config`: an ssh config file with one `Host <instance-id>` entry per instance of your Active
//! requests, so that ssh, scp, rsync, `ssh -L` and Ansible reach instances by id. Certificates are
//! not fetched here: each ssh run refreshes them first through `Match exec` (ssh reads the
//! certificate file before its ProxyCommand has done anything), and the ProxyCommand opens the tunnel.

mod instance;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Result, anyhow, bail};
use jiff::Timestamp;
use kube::ResourceExt;
use passport_crds::{AccessRequest, KeyType};

use super::{proxy, reach::reach};
use crate::{
    args::{SshConfigArgs, TunnelArgs},
    cluster::{access_request, session::Session},
    transport::ssh_command::{RSA_SHA1_PUBKEY_ALGORITHMS, config_path, match_exec_arg, shell_quote},
    ui::{
        errors::one_line,
        format::{OutputFormat, structured},
        time::timestamp,
    },
    workstation::{
        cache::{namespace_dir, path_component, private_dir, write_atomic},
        key_dir::KeyDir,
        known_hosts,
    },
};

/// One `Host` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostEntry {
    pub instance: String,
    pub request: String,
    pub user: String,
    pub identity_file: PathBuf,
    pub certificate_file: PathBuf,
    /// For RSA keys, the certificate whose CA signature is `ssh-rsa` (SHA-1), offered after
    /// `certificate_file` to servers older than OpenSSH 7.2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_file_sha1: Option<PathBuf>,
    pub known_hosts: PathBuf,
    #[serde(skip)]
    pub prepare_command: String,
    #[serde(skip)]
    pub proxy_command: String,
    #[serde(skip)]
    pub expires: Option<Timestamp>,
}

/// The file's text: a header, then for each entry a `Match … exec` that refreshes the certificate
/// and the `Host` block.
pub fn render(header: &str, entries: &[HostEntry]) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    for entry in entries {
        let expires = entry
            .expires
            .map(|t| format!(", until {}", timestamp(t)))
            .unwrap_or_default();
        out.push_str(&format!("\n# AccessRequest {}{expires}\n", entry.request));
        out.push_str(&format!(
            "Match host {} exec {}\n",
            entry.instance,
            match_exec_arg(&entry.prepare_command)
        ));
        out.push_str(&format!("Host {}\n", entry.instance));
        let mut set = |key: &str, value: &str| out.push_str(&format!("  {key} {value}\n"));
        set("HostName", &entry.instance);
        set("User", &entry.user);
        set("IdentityFile", &config_path(&entry.identity_file));
        set("CertificateFile", &config_path(&entry.certificate_file));
        if let Some(sha1) = &entry.certificate_file_sha1 {
            set("CertificateFile", &config_path(sha1));
            set("PubkeyAcceptedAlgorithms", RSA_SHA1_PUBKEY_ALGORITHMS);
        }
        set("IdentitiesOnly", "yes");
        set("UserKnownHostsFile", &config_path(&entry.known_hosts));
        set("HostKeyAlias", &entry.instance);
        set("StrictHostKeyChecking", "yes");
        set("ProxyCommand", &entry.proxy_command);
    }
    out
}

/// The requests to write entries for: `name` (which must be usable now), or all of the user's
/// usable ones in the namespace.
async fn requests(session: &Session, name: Option<&str>) -> Result<Vec<AccessRequest>> {
    if let Some(name) = name {
        let request = access_request::get_mine(session, name).await?;
        access_request::ensure_usable(&request)?;
        return Ok(vec![request]);
    }
    let me = session.whoami().await?;
    let mine: Vec<AccessRequest> = access_request::list(session)
        .await?
        .into_iter()
        .filter(|r| r.spec.requester == me.username && r.unusable().is_none())
        .collect();
    if mine.is_empty() {
        bail!(
            "you ({}) have no Active AccessRequest in namespace {}; ask for one with kubectl passport request --instance INSTANCE_ID --reason REASON --wait",
            me.username,
            session.namespace
        );
    }
    Ok(mine)
}

pub async fn run(session: &Session, args: &SshConfigArgs, format: OutputFormat) -> Result<ExitCode> {
    if let Some(instance) = &args.instance {
        return run_for_instance(session, args, instance, format).await;
    }
    let exe = std::env::current_exe()?;
    let mut chosen: BTreeMap<String, HostEntry> = BTreeMap::new();
    let mut skipped = Vec::new();
    for request in requests(session, args.name.as_deref()).await? {
        for entry in host_entries(session, &request, &exe, &args.tunnel, &mut skipped)? {
            // An instance in several requests goes through the one that lasts longest.
            if chosen
                .get(&entry.instance)
                .is_none_or(|e| e.expires < entry.expires)
            {
                chosen.insert(entry.instance.clone(), entry);
            }
        }
    }
    let entries: Vec<HostEntry> = chosen.into_values().collect();
    if entries.is_empty() {
        bail!("no instance to write an entry for ({})", skipped.join("; "));
    }
    for note in &skipped {
        eprintln!("kubectl-passport: skipped {note}");
    }
    let path = file_path(session, args.name.as_deref())?.join("ssh_config");
    write_and_show(session, &path, &entries, format)
}

/// `--instance`: the entry for one instance, through the request of yours that reaches it now, once
/// credentials for it were obtained; else why it cannot be reached.
async fn run_for_instance(
    session: &Session,
    args: &SshConfigArgs,
    instance: &str,
    format: OutputFormat,
) -> Result<ExitCode> {
    let mine = match args.name.as_deref() {
        Some(name) => vec![access_request::get_mine(session, name).await?],
        None => {
            let me = session.whoami().await?;
            let mut all = access_request::list(session).await?;
            all.retain(|r| r.spec.requester == me.username);
            all
        }
    };
    let request = instance::covering(&mine, instance, &session.namespace).map_err(|why| anyhow!(why))?;
    let name = request.name_any();
    reach(session, &name, Some(instance), &args.tunnel)
        .await
        .map_err(|err| {
            anyhow!(
                "AccessRequest {name} covers {instance}, but its credentials cannot be obtained: {}",
                one_line(&err)
            )
        })?;
    let exe = std::env::current_exe()?;
    let mut entries = host_entries(session, request, &exe, &args.tunnel, &mut Vec::new())?;
    entries.retain(|e| e.instance == instance);
    let path = file_path(session, Some(&name))?.join(format!("ssh_config-{}", path_component(instance)));
    write_and_show(session, &path, &entries, format)
}

/// Writes `entries` to `path` (0600) and prints the path (or, with `-o json|yaml`, the entries).
fn write_and_show(
    session: &Session,
    path: &Path,
    entries: &[HostEntry],
    format: OutputFormat,
) -> Result<ExitCode> {
    let header = format!(
        "Written by kubectl passport ssh-config for namespace {} (context {}) at {}.\n\
         Use: ssh -F {} <instance-id>; entries work while their AccessRequest is Active.",
        session.namespace,
        session.context,
        timestamp(Timestamp::now()),
        shell_quote(&path.to_string_lossy()),
    );
    write_atomic(path, render(&header, entries).as_bytes(), 0o600)?;
    let shown = serde_json::json!({ "path": path, "hosts": entries });
    if !structured(format, &shown)? {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The entries for `request`'s Linux instances, with the key pair and known_hosts they point at
/// made ready; what cannot have an entry is noted in `skipped`.
fn host_entries(
    session: &Session,
    request: &AccessRequest,
    exe: &Path,
    tunnel: &TunnelArgs,
    skipped: &mut Vec<String>,
) -> Result<Vec<HostEntry>> {
    let name = request.name_any();
    let status = request.status.clone().unwrap_or_default();
    let Some(user) = status.username else {
        skipped.push(format!("{name}: no username yet"));
        return Ok(Vec::new());
    };
    let keys = KeyDir::open(&session.context, &session.namespace, &name, tunnel.key_type.0)?;
    keys.ensure_key_pair(&format!("passport {}/{name}", session.namespace))?;
    known_hosts::write(&keys, request, &[])?;
    let proxy = proxy::invocation(session, exe, &name, tunnel);
    let mut entries = Vec::new();
    for instance in access_request::instance_ids(request) {
        if access_request::is_windows(request, instance) {
            skipped.push(format!(
                "{instance}: Windows (use kubectl passport connect {name} {instance})"
            ));
            continue;
        }
        entries.push(HostEntry {
            instance: instance.to_owned(),
            request: name.clone(),
            user: user.clone(),
            identity_file: keys.private_key(),
            certificate_file: keys.certificate(),
            certificate_file_sha1: (keys.key_type == KeyType::Rsa).then(|| keys.certificate_sha1()),
            known_hosts: keys.known_hosts(),
            prepare_command: proxy.command(true),
            proxy_command: proxy.command(false),
            expires: status.expires_at.as_ref().map(|t| t.0),
        });
    }
    Ok(entries)
}

/// The directory the file goes in (created 0700): per namespace, or per request when one is named.
fn file_path(session: &Session, request: Option<&str>) -> Result<PathBuf> {
    let dir = namespace_dir(&session.context, &session.namespace)?;
    let dir = match request {
        Some(name) => dir.join(path_component(name)),
        None => dir,
    };
    private_dir(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn entries_pin_the_instance_and_proxy_through_the_plugin() {
        let dir = PathBuf::from("/c/passport/ctx/team-a/db");
        let entry = HostEntry {
            instance: "i-0123456789abcdef0".into(),
            request: "db".into(),
            user: fixtures::USERNAME.into(),
            identity_file: dir.join("id_ed25519"),
            certificate_file: dir.join("id_ed25519-cert.pub"),
            certificate_file_sha1: None,
            known_hosts: dir.join("known_hosts"),
            prepare_command: "/bin/kubectl-passport --context c -n team-a proxy --prepare db %h %p".into(),
            proxy_command: "/bin/kubectl-passport --context c -n team-a proxy db %h %p".into(),
            expires: Some("2025-03-02T13:00:00Z".parse().expect("ts")),
        };
        let text = render("header line\nsecond", &[entry]);
        assert_eq!(
            text,
            "# header line\n# second\n\
             \n# AccessRequest db, until 2025-03-02T13:00:00Z\n\
             Match host i-0123456789abcdef0 exec \"/bin/kubectl-passport --context c -n team-a proxy --prepare db %h %p\"\n\
             Host i-0123456789abcdef0\n\
             \x20 HostName i-0123456789abcdef0\n\
             \x20 User rs-5f3a9c21\n\
             \x20 IdentityFile /c/passport/ctx/team-a/db/id_ed25519\n\
             \x20 CertificateFile /c/passport/ctx/team-a/db/id_ed25519-cert.pub\n\
             \x20 IdentitiesOnly yes\n\
             \x20 UserKnownHostsFile /c/passport/ctx/team-a/db/known_hosts\n\
             \x20 HostKeyAlias i-0123456789abcdef0\n\
             \x20 StrictHostKeyChecking yes\n\
             \x20 ProxyCommand /bin/kubectl-passport --context c -n team-a proxy db %h %p\n"
        );
    }

    /// An RSA key's entry offers the SHA-2 certificate, then the `ssh-rsa` one, and lets ssh offer
    /// the `ssh-rsa` certificate type to servers that know no other.
    #[test]
    fn rsa_entries_offer_the_sha2_certificate_then_the_sha1_one() {
        let dir = PathBuf::from("/c/passport/ctx/team-a/db");
        let entry = HostEntry {
            instance: "i-0123456789abcdef0".into(),
            request: "db".into(),
            user: fixtures::USERNAME.into(),
            identity_file: dir.join("id_rsa"),
            certificate_file: dir.join("id_rsa-cert.pub"),
            certificate_file_sha1: Some(dir.join("id_rsa-sha1-cert.pub")),
            known_hosts: dir.join("known_hosts"),
            prepare_command: "prepare %h %p".into(),
            proxy_command: "proxy %h %p".into(),
            expires: None,
        };
        let text = render("h", &[entry]);
        assert!(
            text.contains(
                "  IdentityFile /c/passport/ctx/team-a/db/id_rsa\n\
                 \x20 CertificateFile /c/passport/ctx/team-a/db/id_rsa-cert.pub\n\
                 \x20 CertificateFile /c/passport/ctx/team-a/db/id_rsa-sha1-cert.pub\n\
                 \x20 PubkeyAcceptedAlgorithms +ssh-rsa-cert-v01@openssh.com\n\
                 \x20 IdentitiesOnly yes\n"
            ),
            "{text}"
        );
    }
}

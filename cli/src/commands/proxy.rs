//! `proxy` (hidden), ssh's ProxyCommand: checks the request is still Active, makes sure the
//! certificate next to the key lasts at least another minute (else obtains a fresh one with the same
//! key), then carries ssh's bytes: over plain TCP to a direct endpoint, or through Session Manager.
//! With `--prepare` (ssh's `Match exec`, which runs before ssh reads the certificate) it stops after
//! the certificate.

use std::{os::unix::process::CommandExt, process::ExitCode, time::Duration};

use anyhow::{Result, anyhow};
use passport_crds::KeyType;

use crate::{
    args::{self, ProxyArgs, TunnelArgs},
    credentials::{self, Issued, Need},
    keys::KeyDir,
    session::Session,
    ssm::{self, SessionTarget},
    target, tunnel,
};

/// A certificate must last this much longer to be used as it is.
pub const MIN_VALIDITY: Duration = Duration::from_secs(60);
pub const DIRECT_ENV: &str = "PASSPORT_DIRECT_ENDPOINTS";

/// The direct endpoint for `instance`, from the flags or `PASSPORT_DIRECT_ENDPOINTS`.
pub fn direct_for(tunnel: &TunnelArgs, instance: &str) -> Result<Option<String>> {
    let env = std::env::var(DIRECT_ENV).ok();
    args::direct_endpoint(&tunnel.direct, env.as_deref(), instance).map_err(|err| anyhow!(err))
}

pub async fn run(session: &Session, args: &ProxyArgs) -> Result<ExitCode> {
    let request = session.request(&args.name).await?;
    target::ensure_active(&request)?;
    let instance = target::resolve_instance(&request, Some(&args.instance))?;
    let direct = direct_for(&args.tunnel, &instance)?;
    if direct.is_none() {
        ssm::find_plugin()?;
    }
    let keys = KeyDir::open(
        &session.context,
        &session.namespace,
        &args.name,
        KeyType::from(args.tunnel.key_type),
    )?;
    let need = Need {
        min_validity: MIN_VALIDITY,
        aws_session: direct.is_none(),
    };
    let issued = credentials::ensure(session, &request, &keys, need).await?;
    if args.prepare {
        return Ok(ExitCode::SUCCESS);
    }
    match direct {
        Some(address) => {
            tokio::task::block_in_place(|| tunnel::pipe_stdio(&address))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let started = session_manager(&keys, &issued, &instance, args.port, Document::Ssh).await?;
            let plugin = ssm::find_plugin()?;
            let creds = credentials::aws_session(&keys, &issued)?;
            let err = ssm::plugin_command(&plugin, &started, &creds).exec();
            Err(anyhow!("cannot run {}: {err}", plugin.display()))
        }
    }
}

/// Which Session Manager document to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// SSH to `port` on the instance (ssh's ProxyCommand).
    Ssh,
    /// Forward local port `local` to `port` on the instance (RDP).
    PortForwarding { local: u16 },
}

/// Starts a Session Manager session to `instance` with the sealed AWS session.
pub async fn session_manager(
    keys: &KeyDir,
    issued: &Issued,
    instance: &str,
    port: u16,
    document: Document,
) -> Result<ssm::Started> {
    let tunnel = issued.tunnel.clone().ok_or_else(|| {
        anyhow!(
            "CredentialRequest {} carries no Session Manager parameters; reach the instance with --direct INSTANCE=HOST:PORT",
            issued.credential_request
        )
    })?;
    let creds = credentials::aws_session(keys, issued)?;
    let mut parameters = std::collections::BTreeMap::new();
    parameters.insert("portNumber".to_owned(), vec![port.to_string()]);
    let name = match document {
        Document::Ssh => tunnel.ssh_document,
        Document::PortForwarding { local } => {
            parameters.insert("localPortNumber".to_owned(), vec![local.to_string()]);
            tunnel.port_forwarding_document
        }
    };
    let target = SessionTarget {
        instance: instance.to_owned(),
        document: name,
        parameters,
        region: tunnel.region,
    };
    ssm::start(&creds, &target).await
}

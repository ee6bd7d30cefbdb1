//! `proxy` (hidden), ssh's ProxyCommand: checks the request is still Active, makes sure the
//! certificate next to the key lasts at least another minute (else obtains a fresh one with the same
//! key), then carries ssh's bytes: over plain TCP to a direct endpoint, or through Session Manager.
//! With `--prepare` (ssh's `Match exec`, which runs before ssh reads the certificate) it stops after
//! the certificate.

use std::{os::unix::process::CommandExt, path::Path, process::ExitCode};

use anyhow::{Result, anyhow};

use super::reach::reach;
use crate::{
    args::{ProxyArgs, TunnelArgs},
    cluster::session::Session,
    transport::{
        session_manager::{self, Document},
        ssh_command::ProxySpec,
        tcp,
    },
};

pub async fn run(session: &Session, args: &ProxyArgs) -> Result<ExitCode> {
    let reach = reach(session, &args.name, Some(&args.instance), &args.tunnel).await?;
    if args.prepare {
        return Ok(ExitCode::SUCCESS);
    }
    match reach.direct {
        Some(address) => {
            tokio::task::block_in_place(|| tcp::pipe_stdio(&address))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let mut plugin = session_manager::open(
                &reach.keys,
                &reach.issued,
                &reach.instance,
                args.port,
                Document::Ssh,
            )
            .await?;
            let err = plugin.exec();
            Err(anyhow!(
                "cannot run {}: {err}",
                plugin.get_program().to_string_lossy()
            ))
        }
    }
}

/// How ssh runs this verb for `request` (`exe` is this binary) in the session's context and
/// namespace, with the same tunnel flags.
pub fn invocation<'a>(
    session: &'a Session,
    exe: &'a Path,
    request: &'a str,
    tunnel: &'a TunnelArgs,
) -> ProxySpec<'a> {
    ProxySpec {
        exe,
        kubeconfig: session.kubeconfig.as_deref(),
        context: &session.context,
        namespace: &session.namespace,
        request,
        key_type: tunnel.key_type.0,
        direct: &tunnel.direct,
    }
}

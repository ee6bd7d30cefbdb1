//! `whoami`, `version` and `completion`.

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use crate::{
    args::{Cli, Global},
    cluster::session::Session,
    ui::{
        errors::one_line,
        format::{OutputFormat, structured},
    },
};

pub async fn whoami(session: &Session, format: OutputFormat) -> Result<ExitCode> {
    let me = session.whoami().await?;
    if !structured(format, me)? {
        println!("Username:  {}", me.username);
        println!("Groups:    {}", me.groups.join(", "));
        println!("Context:   {} (namespace {})", session.context, session.namespace);
    }
    Ok(ExitCode::SUCCESS)
}

/// The client's version always; the server's when it can be reached.
pub async fn version(global: &Global) -> Result<ExitCode> {
    let client = env!("CARGO_PKG_VERSION");
    let server = match Session::connect(global.selection()).await {
        Ok(session) => session.server_version().await,
        Err(err) => Err(err),
    }
    .map_err(|err| one_line(&err));
    let shown = serde_json::json!({
        "clientVersion": { "plugin": "kubectl-passport", "version": client },
        "serverVersion": server.as_ref().ok(),
    });
    if !structured(global.output, &shown)? {
        println!("Client Version: kubectl-passport {client}");
        match &server {
            Ok(version) => println!("Server Version: {version}"),
            Err(err) => println!("Server Version: unknown ({err})"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn completion(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "kubectl-passport", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

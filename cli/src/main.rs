//! `kubectl passport`: the kubectl plugin of passport. Ask for access, review it, follow it, and
//! connect: SSH certificates and sealed secrets come through CredentialRequests, and ssh goes through
//! Session Manager (or a direct endpoint) with host keys pinned by instance id.
//!
//! Layers: `commands` (the verbs) use `cluster` (kubeconfig, passport objects, the CredentialRequest
//! exchange) and `transport` (Session Manager, TCP, ssh command lines); both use `workstation` (keys,
//! certificates and known_hosts in the cache); everything may use `ui` (formats, tables, error
//! lines), which uses nothing.
#![forbid(unsafe_code)]

mod args;
mod cluster;
mod commands;
#[cfg(test)]
mod fixtures;
mod transport;
mod ui;
mod workstation;

use std::{io::Write, process::ExitCode};

use clap::{Parser, error::ErrorKind};

use crate::{
    args::{Cli, Verb},
    ui::errors,
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return ExitCode::from(2);
        }
        Err(err) => {
            eprintln!(
                "{}{}",
                errors::PREFIX,
                errors::clap_line(&err.render().to_string())
            );
            return ExitCode::from(2);
        }
    };
    init_tracing();
    // ssh runs `proxy --prepare` (`Match exec`) before the ProxyCommand, which says the same error.
    let quiet = matches!(&cli.command, Verb::Proxy(p) if p.prepare);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{}cannot start: {err}", errors::PREFIX);
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            if !quiet {
                eprintln!("{}{}", errors::PREFIX, errors::one_line(&err));
            }
            ExitCode::FAILURE
        }
    };
    let _ = std::io::stdout().flush();
    // Background work (a tunnel's stdin reader, a watch) must not hold the exit.
    runtime.shutdown_background();
    code
}

/// Logs go to stderr, off unless RUST_LOG asks (stdout may be ssh's tunnel).
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

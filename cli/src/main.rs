//! `kubectl passport`: the kubectl plugin of passport. Ask for access, review it, follow it, and
//! connect: SSH certificates and sealed secrets come through CredentialRequests, and ssh goes through
//! Session Manager (or a direct endpoint) with host keys pinned by instance id.
#![forbid(unsafe_code)]

mod args;
mod connect;
mod credentials;
mod errors;
mod info;
mod keys;
mod logbook;
mod modify;
mod names;
mod output;
mod proxy;
mod request;
mod review;
mod session;
mod show;
mod ssh_config;
mod sshcmd;
mod ssm;
mod target;
mod tunnel;

use std::{io::Write, process::ExitCode};

use clap::{Parser, error::ErrorKind};
use passport_crds::Decision;

use crate::{
    args::{Cli, Verb},
    session::Session,
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
    let code = match runtime.block_on(run(cli)) {
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

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (global, format) = (&cli.global, cli.global.output);
    let session = || Session::connect(global);
    match cli.command {
        Verb::Version => info::version(global).await,
        Verb::Completion(args) => info::completion(args.shell),
        Verb::Request(args) => request::run(&session().await?, &args, format).await,
        Verb::List => show::list(&session().await?, format).await,
        Verb::Get(args) => show::get(&session().await?, &args.name, format).await,
        Verb::Approve(args) => {
            review::run(
                &session().await?,
                &args.name,
                Decision::Approve,
                args.comment,
                format,
            )
            .await
        }
        Verb::Deny(args) => {
            review::run(
                &session().await?,
                &args.name,
                Decision::Deny,
                Some(args.comment),
                format,
            )
            .await
        }
        Verb::Extend(args) => modify::extend(&session().await?, &args, format).await,
        Verb::Complete(args) => modify::complete(&session().await?, &args.name, format).await,
        Verb::Connect(args) => connect::run(&session().await?, &args, format).await,
        Verb::SshConfig(args) => ssh_config::run(&session().await?, &args, format).await,
        Verb::Logbook(args) => logbook::run(&session().await?, &args.name, format).await,
        Verb::Whoami => info::whoami(&session().await?, format).await,
        Verb::Proxy(args) => proxy::run(&session().await?, &args).await,
    }
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod args_tests;

//! The verbs, one file per group; each reads its flags, asks the cluster, the workstation and the
//! transport layers, and prints through `ui`.

mod connect;
mod doctor;
mod info;
mod logbook;
mod modify;
mod preview;
mod proxy;
mod reach;
mod request;
mod review;
mod show;
mod ssh_config;

use std::process::ExitCode;

use anyhow::Result;
use passport_crds::ReviewDecision::{Approve, Deny};

use crate::{
    args::{Cli, Verb},
    cluster::session::Session,
};

/// Runs the verb `cli` names.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let (global, format) = (&cli.global, cli.global.output);
    let session = || Session::connect(global.selection());
    match cli.command {
        Verb::Version => info::version(format),
        Verb::Completion(args) => info::completion(args.shell),
        Verb::Doctor(args) => doctor::run(global, &args).await,
        Verb::Request(args) => request::run(&session().await?, &args, format).await,
        Verb::List => show::list(&session().await?, format).await,
        Verb::Get(args) => show::get(&session().await?, &args.name, format).await,
        Verb::Approve(a) => review::run(&session().await?, &a.name, Approve, a.comment, format).await,
        Verb::Deny(d) => review::run(&session().await?, &d.name, Deny, Some(d.comment), format).await,
        Verb::Extend(args) => modify::extend(&session().await?, &args, format).await,
        Verb::Complete(args) => modify::complete(&session().await?, &args.name, format).await,
        Verb::Connect(args) => connect::run(&session().await?, &args, format).await,
        Verb::SshConfig(args) => ssh_config::run(&session().await?, &args, format).await,
        Verb::Logbook(args) => logbook::run(&session().await?, &args.name, format).await,
        Verb::Whoami => info::whoami(&session().await?, format).await,
        Verb::Proxy(args) => proxy::run(&session().await?, &args).await,
    }
}

//! `whoami`, `version` and `completion`.

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use crate::{
    args::Cli,
    cluster::session::Session,
    ui::format::{OutputFormat, structured},
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

/// The plugin's version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the plugin was built from (`unknown` when built outside git; see build.rs).
pub const COMMIT: &str = env!("PASSPORT_GIT_COMMIT");

/// The one line `version` prints: the plugin's version and commit, nothing else (scripts and krew
/// read it; `doctor` shows the cluster's version).
pub fn version_line() -> String {
    format!("kubectl-passport {VERSION} (commit {COMMIT})")
}

pub fn version(format: OutputFormat) -> Result<ExitCode> {
    let shown = serde_json::json!({ "plugin": "kubectl-passport", "version": VERSION, "commit": COMMIT });
    if !structured(format, &shown)? {
        println!("{}", version_line());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn completion(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "kubectl-passport", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

//! `doctor`: checks what `kubectl passport` needs and explains, one line each with the fix, what is
//! wrong: the plugin, the kubeconfig and context, the API server, your rights for each verb,
//! passport's kinds and the operator's heartbeat (its leader lease), the ssh client, AWS's
//! session-manager-plugin, and this machine's clock against the API server's. Exits 1 when something
//! blocks use.

mod check;
mod cluster;
mod judge;
mod probe;
mod workstation;

use std::process::ExitCode;

use anyhow::Result;
use jiff::Timestamp;

use super::info;
use crate::{
    args::{DoctorArgs, Global},
    transport::direct::DIRECT_ENV,
    ui::format::structured,
};

pub async fn run(global: &Global, args: &DoctorArgs) -> Result<ExitCode> {
    let (cluster, ssh, session_manager_plugin) = tokio::join!(
        probe::cluster(global, &args.operator_namespace),
        probe::tool_says("ssh", &["-V"]),
        probe::tool_says("session-manager-plugin", &["--version"]),
    );
    let findings = judge::Findings {
        plugin: info::version_line(),
        cluster,
        ssh,
        session_manager_plugin,
        direct_endpoints: std::env::var_os(DIRECT_ENV).is_some_and(|v| !v.is_empty()),
        now: Timestamp::now(),
    };
    let checks = judge::judge(&findings);
    if !structured(global.output, &checks)? {
        for check in &checks {
            println!("{}", check.line());
        }
    }
    if judge::blocks_use(&checks) {
        let failed = checks.iter().filter(|c| c.status == judge::Status::Fail).count();
        eprintln!("kubectl-passport: doctor: {failed} check(s) failed; fix the FAIL lines above");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

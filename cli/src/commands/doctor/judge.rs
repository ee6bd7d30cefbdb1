//! What `doctor` concludes from what it found: one [`Check`] per line, each with the fix when
//! something is wrong. Pure: the findings come in as values (see [`super::probe`] for how they are
//! gathered), so every verdict is unit-tested.

use jiff::{SignedDuration, Timestamp};

pub use super::check::{Check, Status, blocks_use};
use super::{
    cluster::{LeaseRead, RIGHTS, api_server, crds, heartbeat, kubeconfig, rbac},
    workstation::{clock, session_manager_plugin, ssh},
};

/// Everything `doctor` found out about the cluster, once its kubeconfig gave a context.
#[derive(Debug, Clone)]
pub struct ClusterFindings {
    pub context: String,
    pub namespace: String,
    /// The API server's version and our username.
    pub reached: Result<(String, String), String>,
    /// The API server's time minus ours, from its `Date` header.
    pub skew: Option<SignedDuration>,
    /// The answer for each of [`RIGHTS`], in order.
    pub rights: Vec<Result<bool, String>>,
    pub crds: Result<Option<Vec<String>>, String>,
    pub operator_namespace: String,
    pub lease: LeaseRead,
}

/// Everything `doctor` found out.
#[derive(Debug, Clone)]
pub struct Findings {
    pub plugin: String,
    /// The cluster's findings, or why the kubeconfig gave no context.
    pub cluster: Result<ClusterFindings, String>,
    pub ssh: Result<String, String>,
    pub session_manager_plugin: Result<String, String>,
    pub direct_endpoints: bool,
    /// This machine's time when the findings were made.
    pub now: Timestamp,
}

pub use passport_crds::common::OPERATOR_LEASE;

/// The report: one line per check, in the order a person fixes things.
pub fn judge(findings: &Findings) -> Vec<Check> {
    let mut checks = vec![Check::ok("plugin", findings.plugin.clone())];
    match &findings.cluster {
        Err(why) => checks.push(kubeconfig(&Err(why.clone()))),
        Ok(cluster) => {
            checks.push(kubeconfig(&Ok((
                cluster.context.clone(),
                cluster.namespace.clone(),
            ))));
            checks.push(api_server(&cluster.reached));
            if cluster.reached.is_ok() {
                checks.extend(cluster_checks(cluster, findings.now));
            }
        }
    }
    checks.push(ssh(&findings.ssh));
    checks.push(session_manager_plugin(
        &findings.session_manager_plugin,
        findings.direct_endpoints,
    ));
    checks
}

/// The checks that need an API server that answers.
fn cluster_checks(cluster: &ClusterFindings, now: Timestamp) -> Vec<Check> {
    let mut checks: Vec<Check> = RIGHTS
        .iter()
        .zip(&cluster.rights)
        .map(|(right, allowed)| rbac(right, &cluster.namespace, allowed))
        .collect();
    checks.push(crds(&cluster.crds));
    let server_now = now + cluster.skew.unwrap_or_default();
    checks.push(heartbeat(
        &cluster.lease,
        OPERATOR_LEASE,
        &cluster.operator_namespace,
        server_now,
    ));
    checks.push(match cluster.skew {
        Some(skew) => clock(skew),
        None => Check::new(
            "clock",
            Status::Warn,
            "the API server sent no Date header to compare with",
            None,
        ),
    });
    checks
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;

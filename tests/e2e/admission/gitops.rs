//! A merge approves only where its applier is trusted: on a control plane of its own with passport's
//! admission policy and the real operator, a request a GitOps tool applied (signed) for alice is
//! approved by the merge only if the namespace's AccessPolicy lists the applier in
//! spec.gitopsAppliers (here by group, which the request must claim in passport.dev/applier-groups),
//! and denied, naming the applier, otherwise.

use std::{sync::Arc, time::Duration};

use anyhow::{Result, ensure};
use kube::Api;
use passport_crds::{AccessRequest, Phase};
use passport_tests::{fixtures, operator::OperatorProcess, requests};

use super::{AdmissionPlane, Team, applied_by};
use crate::Env;

/// How long the operator may take to decide on a request.
const DECISION: Duration = Duration::from_secs(60);

pub async fn merge_approves_only_where_trusted(env: Arc<Env>) -> Result<()> {
    let emulator = env.emulator().await?;
    // Its own plane: the operator would add its finalizer to the other trials' requests.
    let plane = Arc::new(AdmissionPlane::start().await?);
    let operator = OperatorProcess::start(&plane.plane, &emulator.env_vars())?;
    let team = Team::on(plane.clone(), "gitops-trust").await?;
    let account = format!("{}-account", team.namespace);
    let namespace = team.namespace.as_str();
    team.apply(
        "admin",
        &fixtures::account(&account).allowed_namespaces([namespace]),
    )?
    .ok()?;
    let policy = fixtures::policy("gitops")
        .namespace(namespace)
        .requester_users(["alice"])
        .instances([fixtures::INSTANCE])
        .default_account(&account)
        .with(|p| p.spec.gitops_appliers.groups = vec!["gitops".to_owned()]);
    team.apply("admin", &policy)?.ok()?;

    let unclaimed = applied_by(team.request("unclaimed", "alice"), "argocd", None);
    team.apply("argocd", &unclaimed)?.ok()?;
    let claimed = applied_by(team.request("claimed", "alice"), "argocd", Some("gitops"));
    team.apply("argocd", &claimed)?.ok()?;

    let requests: Api<AccessRequest> = Api::namespaced(plane.plane.admin_client().await?, namespace);
    let log = || format!("--- operator log ---\n{}", operator.log_tail());
    let denied = requests::wait_phase(&requests, "unclaimed", Phase::Denied, DECISION, log).await?;
    let message = denied.status.map(|s| s.message).unwrap_or_default();
    ensure!(
        message.contains("applied by argocd for alice") && message.contains("spec.gitopsAppliers"),
        "the denial does not name the applier and the field: {message}"
    );
    let approved = |r: &AccessRequest| r.status.as_ref().is_some_and(|s| s.approved_at.is_some());
    requests::wait_for(&requests, "claimed", "approved", DECISION, approved, log).await?;
    Ok(())
}

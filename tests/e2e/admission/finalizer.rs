//! The finalizer that guarantees revocation is the operator's alone: the requester cannot strip it,
//! not even while the request is being deleted (it stays until the operator has revoked), nor hand the
//! request to the garbage collector; an administrator may only once the operator reports revocation
//! stuck.

use anyhow::{Context, Result, ensure};
use passport_tests::wait::eventually;
use serde_json::json;

use super::{PROPAGATION, Team, refused};

pub async fn rules(team: Team) -> Result<()> {
    team.apply_once_bound("alice", &team.request("mine", "alice"))
        .await?;
    let add = json!([{ "op": "add", "path": "/metadata/finalizers", "value": ["passport.dev/revoke"] }]);
    let remove = json!([{ "op": "remove", "path": "/metadata/finalizers/0" }]);
    // The operator's ClusterRoleBinding may take a moment to reach the authorizer.
    eventually(PROPAGATION, || async {
        team.patch_request(Team::OPERATOR, "mine", &add)?.ok()
    })
    .await
    .context("the operator adds its finalizer")?;

    let expected = [
        "finalizer passport.dev/revoke is the operator's",
        "revocationOverrideGroups",
    ];
    refused(
        team.patch_request("alice", "mine", &remove)?,
        "alice strips the finalizer",
        &expected,
    )?;
    refused(
        team.patch_request("admin", "mine", &remove)?,
        "an administrator strips the finalizer of a request whose revocation is not stuck",
        &[
            "finalizer passport.dev/revoke",
            "only once the request reports RevocationStuck",
        ],
    )?;
    let owner = json!([{ "op": "add", "path": "/metadata/ownerReferences", "value": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "00000000-0000-0000-0000-000000000000"
    }] }]);
    refused(
        team.patch_request("alice", "mine", &owner)?,
        "alice gives her request an owner",
        &["metadata.ownerReferences of an AccessRequest cannot change"],
    )?;

    // Deleting only marks it: the finalizer holds it until the operator has revoked.
    team.kubectl("alice", &["delete", "ar", "mine", "--wait=false"])?
        .ok()?;
    let deleting = team.kubectl(
        "alice",
        &[
            "get",
            "ar",
            "mine",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ],
    )?;
    ensure!(
        !deleting.ok()?.stdout.trim().is_empty(),
        "mine is not being deleted"
    );
    refused(
        team.patch_request("alice", "mine", &remove)?,
        "alice strips the finalizer of her request being deleted",
        &expected,
    )?;
    ensure!(
        team.request_exists("mine")?,
        "the request went without the operator"
    );
    team.patch_request(Team::OPERATOR, "mine", &remove)?
        .ok()
        .context("the operator removes its finalizer")?;
    ensure!(
        !team.request_exists("mine")?,
        "the request stayed after the operator's finalizer went"
    );
    Ok(())
}

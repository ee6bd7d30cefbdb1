//! The finalizer that guarantees revocation is the operator's alone: the requester cannot strip it,
//! not even while the request is being deleted (it stays until the operator has revoked), nor hand the
//! request to the garbage collector; an administrator may only once the operator reports revocation
//! stuck.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use super::{Team, refused};

/// What the refusal to strip the finalizer must say: whose it is, and who may remove it when stuck.
const STRIP_REFUSED: [&str; 2] = [
    "finalizer passport.dev/revoke is the operator's",
    "revocationOverrideGroups",
];

fn remove() -> Value {
    json!([{ "op": "remove", "path": "/metadata/finalizers/0" }])
}

/// Alice's request "mine", holding the operator's finalizer.
fn finalized_request(team: &Team) -> Result<()> {
    team.apply("alice", &team.request("mine", "alice"))?.ok()?;
    let add = json!([{ "op": "add", "path": "/metadata/finalizers", "value": ["passport.dev/revoke"] }]);
    team.patch_request(Team::OPERATOR, "mine", &add)?
        .ok()
        .context("the operator adds its finalizer")?;
    Ok(())
}

/// Neither the requester nor an administrator (revocation not stuck) strips it; nobody gives the
/// request an owner.
pub async fn the_operators(team: Team) -> Result<()> {
    finalized_request(&team)?;
    refused(
        team.patch_request("alice", "mine", &remove())?,
        "alice strips the finalizer",
        &STRIP_REFUSED,
    )?;
    refused(
        team.patch_request("admin", "mine", &remove())?,
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
    )
}

/// Deleting only marks the request: the requester cannot strip the finalizer then either, and the
/// request stays until the operator, having revoked, removes it.
pub async fn holds_a_deleted_request(team: Team) -> Result<()> {
    finalized_request(&team)?;
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
        team.patch_request("alice", "mine", &remove())?,
        "alice strips the finalizer of her request being deleted",
        &STRIP_REFUSED,
    )?;
    ensure!(
        team.request_exists("mine")?,
        "the request went without the operator"
    );
    team.patch_request(Team::OPERATOR, "mine", &remove())?
        .ok()
        .context("the operator removes its finalizer")?;
    ensure!(
        !team.request_exists("mine")?,
        "the request stayed after the operator's finalizer went"
    );
    Ok(())
}

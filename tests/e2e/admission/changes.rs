//! Changing and deleting a request: the requester's (or its applier's) alone, with groups that must
//! still hold when the request is extended.

use anyhow::{Result, ensure};
use serde_json::json;

use super::{Team, applied_by, refused};

/// Only the requester changes a request: bob, a developer too, may not extend or end alice's; the
/// groups she claimed cannot change.
pub async fn who_changes(team: Team) -> Result<()> {
    let mine = team.request("mine", "alice").requester_groups("developers");
    team.apply("alice", &mine)?.ok()?;
    refused(
        team.patch_request("bob", "mine", &json!({ "spec": { "duration": "12h" } }))?,
        "bob extends alice's request",
        &[
            "only alice (the requester) may change this AccessRequest",
            "you are bob",
        ],
    )?;
    team.patch_request("alice", "mine", &json!({ "spec": { "duration": "2h" } }))?
        .ok()?;
    let regroup =
        json!({ "metadata": { "annotations": { "passport.dev/requester-groups": "developers,sre" } } });
    refused(
        team.patch_request("alice", "mine", &regroup)?,
        "alice changes the groups her request claims",
        &[
            "annotation passport.dev/requester-groups is immutable",
            "create a new AccessRequest",
        ],
    )
}

/// Approval by group cannot outlive the membership: erin, who left group oncall, may end the request
/// she made as a member but not extend it.
pub async fn extension_rechecks_groups(team: Team) -> Result<()> {
    let oncall = team.request("oncall", "erin").requester_groups("oncall");
    team.apply("erin-oncall", &oncall)?.ok()?;
    team.patch_request("erin-oncall", "oncall", &json!({ "spec": { "duration": "2h" } }))?
        .ok()?;
    refused(
        team.patch_request("erin", "oncall", &json!({ "spec": { "duration": "3h" } }))?,
        "erin extends after leaving oncall",
        &[
            "spec.duration changed (an extension), but you are no longer in oncall",
            "passport.dev/requester-groups",
            "create a new AccessRequest instead",
        ],
    )?;
    team.patch_request("erin", "oncall", &json!({ "spec": { "completed": true } }))?
        .ok()?;
    Ok(())
}

/// Requesters may delete their own requests (and an applier those it applied; an administrator any);
/// nobody else may, whatever their RBAC, until the namespace itself is being deleted.
pub async fn who_deletes(team: Team) -> Result<()> {
    team.apply("alice", &team.request("hers", "alice"))?.ok()?;
    team.apply("alice", &team.request("also-hers", "alice"))?.ok()?;
    let applied = applied_by(team.request("applied", "alice"), "argocd", None);
    team.apply("argocd", &applied)?.ok()?;
    team.apply("bob", &team.request("his", "bob"))?.ok()?;

    refused(
        team.kubectl("bob", &["delete", "ar", "hers"])?,
        "bob deletes alice's request",
        &[
            "only alice (the requester), a member of system:masters, or the passport operator may delete",
            "you are bob",
        ],
    )?;
    refused(
        team.kubectl("argocd", &["delete", "ar", "hers"])?,
        "argocd deletes a request it did not apply",
        &["only alice (the requester)", "you are argocd"],
    )?;
    ensure!(team.request_exists("hers")?, "alice's request went");

    team.kubectl("alice", &["delete", "ar", "hers"])?.ok()?;
    team.kubectl("argocd", &["delete", "ar", "applied"])?.ok()?;
    team.kubectl("admin", &["delete", "ar", "his"])?.ok()?;
    for gone in ["hers", "applied", "his"] {
        ensure!(!team.request_exists(gone)?, "{gone} is still there");
    }
    ensure!(team.request_exists("also-hers")?, "also-hers went too");

    // Once the namespace itself is going, whoever empties it may (the namespace controller).
    team.kubectl("admin", &["delete", "namespace", &team.namespace, "--wait=false"])?
        .ok()?;
    team.kubectl("bob", &["delete", "ar", "also-hers"])?.ok()?;
    Ok(())
}

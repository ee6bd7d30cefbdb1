//! Creating: for yourself and with your own groups, or for someone else only signed as the applier.

use anyhow::Result;
use passport_tests::fixtures::{self, Yaml};
use serde_json::json;

use super::{Team, applied_by, refused};

/// A request names its creator as requester and claims only their groups; a review names its
/// creator as reviewer and claims only their groups.
pub async fn only_yourself(team: Team) -> Result<()> {
    let mine = team.request("mine", "alice").requester_groups("developers");
    team.apply("alice", &mine)?.ok()?;

    refused(
        team.apply("alice", &team.request("for-bob", "bob"))?,
        "alice requests for bob",
        &[
            "spec.requester must be your own username (alice)",
            "passport.dev/applied-by: alice",
        ],
    )?;
    let borrowed = team
        .request("borrowed", "alice")
        .requester_groups("developers,sre");
    refused(
        team.apply("alice", &borrowed)?,
        "alice claims group sre",
        &[
            "passport.dev/requester-groups may only list groups you belong to",
            "remove the others",
        ],
    )?;

    let review = |reviewer: &str| {
        fixtures::review("mine")
            .namespace(&team.namespace)
            .generate_name("r-")
            .reviewer(reviewer)
    };
    let create = |who: &str, review: &dyn Yaml| -> Result<_> {
        let yaml = review.yaml()?;
        let kubeconfig = team.kubeconfig(who);
        passport_tests::kubectl::run(&kubeconfig, &["create", "-f", "-"], Some(&yaml))
    };
    refused(
        create("carol", &review("alice"))?,
        "carol reviews in alice's name",
        &["spec.reviewer must be your own username (carol)"],
    )?;
    create("carol", &review("carol").reviewer_groups("sre"))?.ok()?;
    refused(
        create("carol", &review("carol").reviewer_groups("sre,admins"))?,
        "carol claims group admins",
        &[
            "passport.dev/reviewer-groups may only list groups you belong to",
            "remove the others",
        ],
    )
}

/// A request for someone else must be signed by its applier; a request for yourself is not signed.
pub async fn for_someone_else_only_signed(team: Team) -> Result<()> {
    refused(
        team.apply("argocd", &team.request("unsigned", "alice"))?,
        "argocd applies for alice unsigned",
        &[
            "spec.requester must be your own username (argocd)",
            "sign it with annotation passport.dev/applied-by: argocd",
            "spec.gitopsAppliers",
        ],
    )?;
    let self_signed = applied_by(team.request("self-signed", "alice"), "alice", None);
    refused(
        team.apply("alice", &self_signed)?,
        "alice signs her own request as its applier",
        &[
            "passport.dev/applied-by",
            "this one is for yourself",
            "remove them",
        ],
    )
}

/// An applier signs with its own name and only the groups it has.
pub async fn appliers_sign_as_themselves(team: Team) -> Result<()> {
    let for_alice = team.request("gitops", "alice");
    refused(
        team.apply("argocd", &applied_by(for_alice.clone(), "flux", None))?,
        "argocd signs as flux",
        &[
            "passport.dev/applied-by must be your own username (argocd), not flux",
            "set passport.dev/applied-by: argocd",
        ],
    )?;
    refused(
        team.apply("argocd", &applied_by(for_alice, "argocd", Some("gitops,admins")))?,
        "argocd claims group admins",
        &[
            "passport.dev/applier-groups may only list groups you belong to",
            "remove the others",
        ],
    )
}

/// An applier's groups are never the requester's: it may not claim any for them.
pub async fn appliers_claim_no_requester_groups(team: Team) -> Result<()> {
    let claims_hers =
        applied_by(team.request("gitops", "alice"), "argocd", None).requester_groups("developers");
    refused(
        team.apply("argocd", &claims_hers)?,
        "argocd claims alice's groups",
        &[
            "passport.dev/requester-groups may be set only by the requester (alice)",
            "remove it",
            "passport.dev/applier-groups",
        ],
    )
}

/// A signed request is the applier's to change like the requester's, as long as the applier keeps
/// the groups it claimed; its signature never changes, and nobody else changes it.
pub async fn appliers_change_what_they_applied(team: Team) -> Result<()> {
    let signed = applied_by(team.request("gitops", "alice"), "argocd", Some("gitops"));
    team.apply("argocd", &signed)?.ok()?;
    let extend = |duration: &str| json!({ "spec": { "duration": duration } });
    team.patch_request("argocd", "gitops", &extend("2h"))?.ok()?;
    refused(
        team.patch_request("argocd-left-gitops", "gitops", &extend("3h"))?,
        "argocd extends after leaving gitops",
        &[
            "you are no longer in gitops, which annotation passport.dev/applier-groups claims",
            "create a new AccessRequest instead",
        ],
    )?;
    let resigned = json!({ "metadata": { "annotations": { "passport.dev/applied-by": "bob" } } });
    refused(
        team.patch_request("alice", "gitops", &resigned)?,
        "alice re-signs argocd's request as bob's",
        &[
            "annotation passport.dev/applied-by is immutable",
            "create a new AccessRequest",
        ],
    )?;
    let end = json!({ "spec": { "completed": true } });
    refused(
        team.patch_request("bob", "gitops", &end)?,
        "bob ends a request argocd applied for alice",
        &["only alice (the requester) or argocd (the GitOps applier that created it) may change"],
    )?;
    team.patch_request("alice", "gitops", &end)?.ok()?;
    Ok(())
}

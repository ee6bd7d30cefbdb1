//! What passport records: status (the operator's word alone), reviews (facts that never change) and
//! Events (readable by the people who request and review).

use anyhow::{Result, ensure};
use passport_tests::fixtures;
use serde_json::json;

use super::{Team, refused};

/// Every right on passport.dev in the team's namespace, for mallory: what she can then still not do
/// is admission's doing, not RBAC's.
async fn grant_everything(team: &Team) -> Result<()> {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": { "name": "everything", "namespace": team.namespace },
        "rules": [{ "apiGroups": ["passport.dev"], "resources": ["*"], "verbs": ["*"] }],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": "everything", "namespace": team.namespace },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "everything" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory" }],
    });
    team.apply("admin", &role)?.ok()?;
    team.apply("admin", &binding)?.ok()?;
    team.wait_allowed("mallory", "patch", "accessreviews.passport.dev")
        .await
}

/// In the namespace and cluster-wide, the status of passport's objects is what the operator did:
/// with every right on passport.dev, mallory still cannot write the status of a request or a policy,
/// nor can an administrator that of a (cluster-scoped) AwsAccount; the operator can.
pub async fn status_is_the_operators(team: Team) -> Result<()> {
    team.apply("alice", &team.request("mine", "alice"))?.ok()?;
    let account = format!("{}-prod", team.namespace);
    let policy = fixtures::policy("policy").namespace(&team.namespace);
    team.apply("admin", &fixtures::account(&account))?.ok()?;
    team.apply("admin", &policy)?.ok()?;
    grant_everything(&team).await?;

    let active = json!({ "status": { "phase": "Active" } });
    let forged = |who: &str, what: &[&str], status: &serde_json::Value| {
        let mut args = vec!["--subresource=status"];
        args.extend_from_slice(what);
        team.patch(who, &args, status)
    };
    let expected = |kind: &str, user: &str| {
        [
            format!(
                "status of {kind} is written only by the passport operator (system:serviceaccount:passport-system:passport-operator)"
            ),
            format!("you are {user}"),
            "change the spec instead".to_owned(),
        ]
    };
    let check = |outcome, attack: &str, words: [String; 3]| {
        refused(
            outcome,
            attack,
            &words.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    check(
        forged("mallory", &["ar", "mine"], &active)?,
        "mallory marks alice's request Active",
        expected("accessrequests", "mallory"),
    )?;
    let generation = json!({ "status": { "observedGeneration": 42 } });
    check(
        forged("mallory", &["accesspolicy", "policy"], &generation)?,
        "mallory writes an AccessPolicy's status",
        expected("accesspolicies", "mallory"),
    )?;
    check(
        forged("admin", &["awsaccount", &account], &generation)?,
        "an administrator writes a cluster-scoped AwsAccount's status",
        expected("awsaccounts", "admin"),
    )?;
    check(
        forged("admin", &["ar", "mine"], &active)?,
        "an administrator writes a request's status",
        expected("accessrequests", "admin"),
    )?;
    forged(Team::OPERATOR, &["ar", "mine"], &active)?.ok()?;
    forged(Team::OPERATOR, &["awsaccount", &account], &generation)?.ok()?;
    Ok(())
}

/// A review is a fact: neither its decision nor the groups its reviewer claimed change afterwards,
/// whoever holds the rights to try.
pub async fn a_review_is_a_fact(team: Team) -> Result<()> {
    let review = fixtures::review("mine")
        .namespace(&team.namespace)
        .reviewer("carol")
        .reviewer_groups("sre");
    team.apply("carol", &review)?.ok()?;
    grant_everything(&team).await?;
    let regroup = json!({ "metadata": { "annotations": { "passport.dev/reviewer-groups": "sre,admins" } } });
    refused(
        team.patch("mallory", &["accessreview", "mine-review"], &regroup)?,
        "mallory changes the groups carol's review claimed",
        &[
            "annotation passport.dev/reviewer-groups of an AccessReview cannot change",
            "create a new AccessReview",
        ],
    )
}

/// `kubectl describe ar` shows a request's Events to its requester and to approvers: they may read
/// Events, through either API, in the namespace.
pub async fn events_are_readable(team: Team) -> Result<()> {
    team.apply("alice", &team.request("mine", "alice"))?.ok()?;
    let uid = team.kubectl("alice", &["get", "ar", "mine", "-o", "jsonpath={.metadata.uid}"])?;
    let uid = uid.ok()?.stdout;
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "name": "mine.approved", "namespace": team.namespace },
        "involvedObject": {
            "apiVersion": "passport.dev/v1alpha1", "kind": "AccessRequest",
            "name": "mine", "namespace": team.namespace, "uid": uid.trim(),
        },
        "reason": "Approved",
        "message": "approved by the admission trial",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "source": { "component": "passport-operator" },
    });
    team.apply("admin", &event)?.ok()?;
    for who in ["alice", "carol"] {
        for api in ["events", "events.events.k8s.io"] {
            let listed = team.kubectl(who, &["get", api, "-o", "name"])?.ok()?;
            ensure!(
                listed.stdout.contains("mine.approved"),
                "{who} sees no event via {api}"
            );
        }
        let described = team.kubectl(who, &["describe", "ar", "mine"])?.ok()?;
        ensure!(
            described.stdout.contains("approved by the admission trial"),
            "{who}: kubectl describe shows no event:\n{}",
            described.stdout
        );
    }
    Ok(())
}

//! Identity at admission: the apiserver itself, through passport's ValidatingAdmissionPolicy, refuses
//! objects that name someone other than their creator, and groups the creator does not have.

use std::{path::Path, time::Duration};

use anyhow::{Result, ensure};
use passport_tests::{ControlPlane, kubectl};

use crate::{TestFn, test};

pub fn trials() -> Vec<(&'static str, TestFn)> {
    vec![test(
        "admission::only_yourself_and_your_own_groups",
        |_env| async move {
            // Its own control plane: the policy would refuse the other tests' admin-made requests.
            let plane = ControlPlane::start().await?;
            passport_tests::crds::install(&plane.admin_client().await?).await?;
            identity_rules(&plane).await
        },
    )]
}

fn request(name: &str, requester: &str, groups: Option<&str>) -> String {
    let annotations = groups
        .map(|g| format!("  annotations:\n    passport.dev/requester-groups: \"{g}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: passport.dev/v1alpha1\nkind: AccessRequest\nmetadata:\n  name: {name}\n  namespace: team-a\n{annotations}\
         spec:\n  requester: {requester}\n  reason: checking identity rules\n  targets:\n  - instanceId: i-0123456789abcdef0\n"
    )
}

async fn identity_rules(plane: &ControlPlane) -> Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let admin = plane.admin_kubeconfig();
    for file in ["deploy/rbac.yaml", "deploy/admission.yaml"] {
        kubectl::run(&admin, &["apply", "-f", &repo.join(file).to_string_lossy()], None)?.ok()?;
    }
    let bindings = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: requesters\n  namespace: team-a\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: passport-requester}\n\
        subjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: developers}\n\
        - {apiGroup: rbac.authorization.k8s.io, kind: User, name: argocd}\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: approvers\n  namespace: team-a\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: passport-approver}\n\
        subjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: sre}\n";
    kubectl::apply(&admin, bindings)?.ok()?;
    let alice = plane.user_kubeconfig("alice");

    // A new binding may take a moment to reach the policy's informer; retry the first allowed create.
    let mut first = kubectl::apply(&alice, &request("mine", "alice", Some("developers")))?;
    for _ in 0..50 {
        if first.success {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        first = kubectl::apply(&alice, &request("mine", "alice", Some("developers")))?;
    }
    first.ok()?;

    // A new policy is enforced once the apiserver has compiled it; until then creates slip through.
    let mut for_bob = kubectl::apply(&alice, &request("for-bob", "bob", None))?;
    for attempt in 0..100 {
        if !for_bob.success {
            break;
        }
        kubectl::run(
            &alice,
            &["delete", "ar", "-n", "team-a", &format!("for-bob-{attempt}")],
            None,
        )
        .ok();
        tokio::time::sleep(Duration::from_millis(200)).await;
        for_bob = kubectl::apply(&alice, &request(&format!("for-bob-{}", attempt + 1), "bob", None))?;
    }
    ensure!(
        !for_bob.success,
        "alice created a request for bob (the policy was never enforced)"
    );
    ensure!(
        for_bob
            .stderr
            .contains("spec.requester must be your own username (alice)"),
        "{}",
        for_bob.stderr
    );

    let borrowed = kubectl::apply(&alice, &request("borrowed", "alice", Some("developers,sre")))?;
    ensure!(!borrowed.success, "alice claimed group sre");
    ensure!(
        borrowed.stderr.contains("may only list groups you belong to"),
        "{}",
        borrowed.stderr
    );

    let review = "apiVersion: passport.dev/v1alpha1\nkind: AccessReview\nmetadata:\n  name: r\n  namespace: team-a\n\
        spec:\n  accessRequest: mine\n  decision: Approve\n  reviewer: alice\n";
    let as_carol = kubectl::apply(&plane.user_kubeconfig("carol"), review)?;
    ensure!(!as_carol.success, "carol reviewed in alice's name");
    ensure!(
        as_carol
            .stderr
            .contains("spec.reviewer must be your own username (carol)"),
        "{}",
        as_carol.stderr
    );

    // Only the requester changes a request: bob, a developer too, may not extend or end alice's.
    let extend = |kubeconfig: &std::path::Path, duration: &str| {
        let patch = format!(r#"{{"spec":{{"duration":"{duration}"}}}}"#);
        kubectl::run(
            kubeconfig,
            &[
                "-n",
                "team-a",
                "patch",
                "ar",
                "mine",
                "--type=merge",
                "-p",
                &patch,
            ],
            None,
        )
    };
    let bob_extends = extend(&plane.user_kubeconfig("bob"), "12h")?;
    ensure!(!bob_extends.success, "bob extended alice's request");
    ensure!(
        bob_extends
            .stderr
            .contains("only alice (the requester) may change"),
        "{}",
        bob_extends.stderr
    );
    extend(&alice, "2h")?.ok()?;

    // Reviewers may claim only their own groups.
    let grouped_review = |groups: &str| {
        format!(
            "apiVersion: passport.dev/v1alpha1\nkind: AccessReview\nmetadata:\n  generateName: r-\n  namespace: team-a\n  \
             annotations:\n    passport.dev/reviewer-groups: \"{groups}\"\n\
             spec:\n  accessRequest: mine\n  decision: Approve\n  reviewer: carol\n"
        )
    };
    let carol = plane.user_kubeconfig("carol");
    kubectl::run(&carol, &["create", "-f", "-"], Some(&grouped_review("sre")))?.ok()?;
    let claimed = kubectl::run(
        &carol,
        &["create", "-f", "-"],
        Some(&grouped_review("sre,admins")),
    )?;
    ensure!(!claimed.success, "carol claimed group admins");
    ensure!(
        claimed
            .stderr
            .contains("passport.dev/reviewer-groups may only list groups you belong to"),
        "{}",
        claimed.stderr
    );

    // A trusted GitOps applier may request on someone's behalf; nobody else may.
    let argocd = plane.kubeconfig_for("argocd", &[])?;
    let refused = kubectl::apply(&argocd, &request("gitops", "alice", None))?;
    ensure!(!refused.success, "an untrusted applier requested for alice");
    kubectl::run(
        &admin,
        &[
            "-n",
            "passport-system",
            "patch",
            "configmap",
            "passport-identity",
            "-p",
            r#"{"data":{"gitopsAppliers":"argocd"}}"#,
        ],
        None,
    )?
    .ok()?;
    let mut allowed = kubectl::apply(&argocd, &request("gitops", "alice", None))?;
    for _ in 0..50 {
        if allowed.success {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        allowed = kubectl::apply(&argocd, &request("gitops", "alice", None))?;
    }
    allowed.ok()?;
    Ok(())
}

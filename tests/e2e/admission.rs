//! Identity at admission: the apiserver itself, through passport's ValidatingAdmissionPolicy, refuses
//! objects that name someone other than their creator, and groups the creator does not have.

use std::{
    path::Path,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use passport_tests::{
    ControlPlane, controlplane,
    fixtures::{self, RequestBuilder, ReviewBuilder, Yaml},
    kubectl,
    wait::eventually,
};

use crate::{E2e, test};

/// How long a new RoleBinding, policy or ConfigMap may take to reach the apiserver's authorizer and
/// admission informers (nothing to watch: they are the apiserver's own caches).
const PROPAGATION: Duration = Duration::from_secs(60);

pub fn trials() -> Vec<E2e> {
    vec![test(
        "admission::only_yourself_and_your_own_groups",
        |_env| async move {
            // Its own control plane: the policy would refuse the other tests' admin-made requests.
            let plane = controlplane::start_with_crds().await?;
            identity_rules(&plane).await
        },
    )]
}

/// A schema-valid request in team-a; whether the apiserver admits it depends only on who sends it.
fn request(name: &str, requester: &str) -> RequestBuilder {
    fixtures::request(name)
        .namespace("team-a")
        .requester(requester)
        .reason("checking identity rules")
}

/// A review of alice's request "mine" in team-a.
fn review_of_mine() -> ReviewBuilder {
    fixtures::review("mine").namespace("team-a")
}

async fn identity_rules(plane: &ControlPlane) -> Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let admin = plane.admin_kubeconfig();
    for file in ["deploy/rbac.yaml", "deploy/admission.yaml"] {
        kubectl::run(&admin, &["apply", "-f", &repo.join(file).to_string_lossy()], None)?.ok()?;
    }
    let bindings = fixtures::manifest(&[
        &fixtures::namespace("team-a"),
        &fixtures::role_binding(
            "team-a",
            "requesters",
            "passport-requester",
            &[("Group", "developers"), ("User", "argocd")],
        ),
        &fixtures::role_binding("team-a", "approvers", "passport-approver", &[("Group", "sre")]),
    ])?;
    kubectl::apply(&admin, &bindings)?.ok()?;
    let alice = plane.user_kubeconfig("alice");

    // A new binding may take a moment to reach the policy's informer; retry the first allowed create.
    let mine = request("mine", "alice").requester_groups("developers").yaml()?;
    eventually(PROPAGATION, || async { kubectl::apply(&alice, &mine)?.ok() }).await?;

    // A new policy is enforced once the apiserver has compiled it; until then creates slip through
    // (each one that does is deleted, and the next try has a new name).
    let attempt = AtomicU32::new(0);
    let for_bob = eventually(PROPAGATION, || async {
        let name = format!("for-bob-{}", attempt.fetch_add(1, Ordering::Relaxed));
        let outcome = kubectl::apply(&alice, &request(&name, "bob").yaml()?)?;
        if outcome.success {
            kubectl::run(&alice, &["delete", "ar", "-n", "team-a", &name], None).ok();
            bail!("alice created a request for bob (the policy was never enforced)");
        }
        Ok(outcome)
    })
    .await?;
    ensure!(
        for_bob
            .stderr
            .contains("spec.requester must be your own username (alice)"),
        "{}",
        for_bob.stderr
    );

    let borrowed = request("borrowed", "alice").requester_groups("developers,sre");
    let borrowed = kubectl::apply(&alice, &borrowed.yaml()?)?;
    ensure!(!borrowed.success, "alice claimed group sre");
    ensure!(
        borrowed.stderr.contains("may only list groups you belong to"),
        "{}",
        borrowed.stderr
    );

    let review = review_of_mine().name("r").reviewer("alice");
    let as_carol = kubectl::apply(&plane.user_kubeconfig("carol"), &review.yaml()?)?;
    ensure!(!as_carol.success, "carol reviewed in alice's name");
    ensure!(
        as_carol
            .stderr
            .contains("spec.reviewer must be your own username (carol)"),
        "{}",
        as_carol.stderr
    );

    // Only the requester changes a request: bob, a developer too, may not extend or end alice's.
    let extend = |kubeconfig: &Path, duration: &str| {
        let patch = serde_json::json!({ "spec": { "duration": duration } }).to_string();
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
    finalizer_rules(plane, &alice).await?;

    // Reviewers may claim only their own groups.
    let grouped_review = |groups: &str| {
        review_of_mine()
            .generate_name("r-")
            .reviewer("carol")
            .reviewer_groups(groups)
            .yaml()
    };
    let carol = plane.user_kubeconfig("carol");
    kubectl::run(&carol, &["create", "-f", "-"], Some(&grouped_review("sre")?))?.ok()?;
    let claimed = kubectl::run(
        &carol,
        &["create", "-f", "-"],
        Some(&grouped_review("sre,admins")?),
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
    let gitops = request("gitops", "alice").yaml()?;
    let refused = kubectl::apply(&argocd, &gitops)?;
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
    eventually(PROPAGATION, || async { kubectl::apply(&argocd, &gitops)?.ok() }).await?;
    Ok(())
}

/// The finalizer that guarantees revocation is the operator's alone: the requester cannot strip it
/// (nor hand the request to the garbage collector), and an administrator only once the operator
/// reports revocation stuck.
async fn finalizer_rules(plane: &ControlPlane, alice: &Path) -> Result<()> {
    let json_patch = |kubeconfig: &Path, patch: serde_json::Value| {
        let patch = patch.to_string();
        kubectl::run(
            kubeconfig,
            &["-n", "team-a", "patch", "ar", "mine", "--type=json", "-p", &patch],
            None,
        )
    };
    let operator = plane.kubeconfig_for("system:serviceaccount:passport-system:passport-operator", &[])?;
    let add = serde_json::json!([{ "op": "add", "path": "/metadata/finalizers", "value": ["passport.dev/revoke"] }]);
    let remove = serde_json::json!([{ "op": "remove", "path": "/metadata/finalizers/0" }]);
    // A new binding may take a moment to reach the authorizer.
    eventually(PROPAGATION, || async { json_patch(&operator, add.clone())?.ok() })
        .await
        .context("the operator adds its finalizer")?;
    let stripped = json_patch(alice, remove.clone())?;
    ensure!(!stripped.success, "alice removed the finalizer");
    ensure!(
        stripped
            .stderr
            .contains("finalizer passport.dev/revoke is the operator's"),
        "{}",
        stripped.stderr
    );
    // Not even an administrator, while revocation is not reported stuck.
    let stripped = json_patch(&plane.admin_kubeconfig(), remove.clone())?;
    ensure!(
        !stripped.success,
        "an administrator removed the finalizer of a request not stuck"
    );
    let owner = serde_json::json!([{ "op": "add", "path": "/metadata/ownerReferences", "value": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "00000000-0000-0000-0000-000000000000"
    }] }]);
    let adopted = json_patch(alice, owner)?;
    ensure!(!adopted.success, "alice gave her request an owner");
    ensure!(adopted.stderr.contains("ownerReferences"), "{}", adopted.stderr);
    json_patch(&operator, remove)?
        .ok()
        .context("the operator removes its finalizer")?;
    Ok(())
}

//! Approvals bound to what they approve, on real parts: the review that approved one hour does not
//! approve an extension to two, even made in the same second; a review naming the new duration
//! does; a Deny after approval ends the request and revokes what it granted.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kube::api::{Patch, PatchParams};
use passport_crds::{Phase, ReviewDecision};
use passport_tests::{fixtures, instance::Instance};

use crate::{
    E2e,
    crash::no_passport_user_left,
    scenario::{Scenario, on_instance},
};

const TIMEOUT: Duration = Duration::from_secs(90);

pub fn trials() -> Vec<E2e> {
    vec![
        on_instance(
            "approvals::an_extension_needs_a_review_of_its_own",
            "extreview",
            |s, instance| Box::pin(extension_needs_its_own_review(s, instance)),
        ),
        on_instance(
            "approvals::a_deny_after_approval_revokes",
            "latedeny",
            |s, instance| Box::pin(deny_after_approval(s, instance)),
        ),
    ]
}

/// alice may request, carol must approve (one review); no auto-approval.
fn reviewed_policy(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    s.apply(
        &fixtures::policy("reviewed")
            .namespace(&s.namespace)
            .requester_users(["bob"])
            .instances([instance.id()])
            .with(|p| {
                p.spec.approval.required = 1;
                p.spec.approval.approvers.users = vec!["carol".into()];
            }),
    )
}

async fn approved_by_carol(s: &Scenario<'_>, instance: &Instance) -> Result<String> {
    reviewed_policy(s, instance)?;
    s.request("r", "bob", "1h", &[instance.id()])?;
    let pending = s.wait_phase("r", Phase::Pending, TIMEOUT).await?;
    let uid = pending.metadata.uid.clone().context("no uid")?;
    s.apply(&fixtures::review("r").namespace(&s.namespace).bound_to(&uid, "1h"))?;
    s.wait_phase("r", Phase::Active, TIMEOUT).await?;
    Ok(uid)
}

async fn extension_needs_its_own_review(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    let uid = approved_by_carol(s, instance).await?;
    let patch = serde_json::json!({ "spec": { "duration": "2h" } });
    s.requests
        .patch("r", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    // The 1h review is still there, made within the same second as the approval it gave: it does
    // not approve 2h.
    let waiting = s
        .wait_for("r", "the extension waiting for its own review", TIMEOUT, |r| {
            r.status
                .as_ref()
                .is_some_and(|st| st.message.contains("extension to 2h awaits approval"))
        })
        .await?;
    let status = waiting.status.clone().unwrap_or_default();
    ensure!(
        status.approved_duration.as_deref() == Some("1h"),
        "the old review approved the extension: {status:?}"
    );
    s.apply(
        &fixtures::review("r")
            .named("r-review-2h")
            .namespace(&s.namespace)
            .bound_to(&uid, "2h"),
    )?;
    s.wait_for("r", "the extension approved", TIMEOUT, |r| {
        r.status
            .as_ref()
            .is_some_and(|st| st.approved_duration.as_deref() == Some("2h"))
    })
    .await?;
    Ok(())
}

async fn deny_after_approval(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    let uid = approved_by_carol(s, instance).await?;
    s.apply(
        &fixtures::review("r")
            .named("r-deny")
            .namespace(&s.namespace)
            .decision(ReviewDecision::Deny)
            .bound_to(&uid, "1h"),
    )?;
    let denied = s.wait_phase("r", Phase::Denied, TIMEOUT).await?;
    let status = denied.status.clone().unwrap_or_default();
    ensure!(
        status.message.contains("denied by carol after approval"),
        "{}",
        status.message
    );
    no_passport_user_left(instance).await?;
    Ok(())
}

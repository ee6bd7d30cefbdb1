//! `approve` and `deny`: an AccessReview by you on someone's request.

use std::process::ExitCode;

use anyhow::{Result, bail};
use kube::{
    ResourceExt,
    api::{ObjectMeta, PostParams},
};
use passport_crds::{AccessReview, AccessReviewSpec, Decision, common::annotations};

use crate::{
    args::Output,
    errors, names, output,
    session::{Session, claimed_groups},
    target,
};

/// The AccessReview `approve`/`deny` creates.
pub fn build(
    request: &str,
    namespace: &str,
    reviewer: &str,
    groups: &[String],
    decision: Decision,
    comment: Option<String>,
) -> AccessReview {
    let claimed = claimed_groups(groups);
    let annotations =
        (!claimed.is_empty()).then(|| [(annotations::REVIEWER_GROUPS.to_owned(), claimed.join(","))].into());
    let what = match decision {
        Decision::Approve => "approve",
        Decision::Deny => "deny",
    };
    AccessReview {
        metadata: ObjectMeta {
            generate_name: Some(names::generate_name(request, what)),
            namespace: Some(namespace.to_owned()),
            annotations,
            ..ObjectMeta::default()
        },
        spec: AccessReviewSpec {
            access_request: request.to_owned(),
            decision,
            reviewer: reviewer.to_owned(),
            comment: comment.filter(|c| !c.trim().is_empty()),
        },
        status: None,
    }
}

pub async fn run(
    session: &Session,
    name: &str,
    decision: Decision,
    comment: Option<String>,
    format: Output,
) -> Result<ExitCode> {
    let me = session.whoami().await?;
    let request = session.request(name).await?;
    if decision == Decision::Approve && request.spec.requester == me.username {
        bail!("you cannot approve your own AccessRequest {name}: ask another approver");
    }
    let phase = target::phase(&request);
    if phase.is_terminal() {
        bail!("AccessRequest {name} is already {phase:?}: there is nothing to review");
    }
    let review = build(
        name,
        &session.namespace,
        &me.username,
        &me.groups,
        decision,
        comment,
    );
    let created = session
        .api::<AccessReview>()
        .create(&PostParams::default(), &review)
        .await
        .map_err(|err| errors::api(err, "create", "accessreviews", &session.namespace))?;
    if !output::structured(format, &created)? {
        let verb = match decision {
            Decision::Approve => "approved",
            Decision::Deny => "denied",
        };
        println!(
            "accessreview.passport.dev/{} created: you {verb} AccessRequest {name} (requested by {})",
            created.name_any(),
            request.spec.requester
        );
        println!(
            "See its state with: kubectl passport get {name} -n {}",
            session.namespace
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_name_the_request_and_the_reviewer() {
        let review = build(
            "db",
            "team-a",
            "carol",
            &["sre".to_owned(), "system:authenticated".to_owned()],
            Decision::Deny,
            Some("not during the freeze".into()),
        );
        let annotations = review.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get(annotations::REVIEWER_GROUPS).map(String::as_str),
            Some("sre")
        );
        assert_eq!(review.metadata.generate_name.as_deref(), Some("db-deny-"));
        assert_eq!(review.spec.access_request, "db");
        assert_eq!(review.spec.reviewer, "carol");
        assert_eq!(review.spec.decision, Decision::Deny);
        assert_eq!(review.spec.comment.as_deref(), Some("not during the freeze"));
        let blank = build("db", "team-a", "carol", &[], Decision::Approve, Some("  ".into()));
        assert_eq!(blank.spec.comment, None);
    }
}

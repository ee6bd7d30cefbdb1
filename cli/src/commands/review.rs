//! `approve` and `deny`: an AccessReview by you on someone's request.

use std::process::ExitCode;

use anyhow::{Result, bail};
use kube::{ResourceExt, api::ObjectMeta};
use passport_crds::{AccessReview, AccessReviewSpec, ReviewDecision, common::annotations};

use crate::{
    cluster::{
        access_request, names,
        session::{Identity, Session},
    },
    ui::format::{OutputFormat, structured},
};

/// The verb and its past tense, as the command line and its output say them.
fn words(decision: ReviewDecision) -> (&'static str, &'static str) {
    match decision {
        ReviewDecision::Approve => ("approve", "approved"),
        ReviewDecision::Deny => ("deny", "denied"),
    }
}

/// The AccessReview `approve`/`deny` creates.
pub fn build(
    request: &str,
    namespace: &str,
    reviewer: &Identity,
    decision: ReviewDecision,
    comment: Option<String>,
) -> AccessReview {
    let claimed = reviewer.claimed_groups();
    let annotations =
        (!claimed.is_empty()).then(|| [(annotations::REVIEWER_GROUPS.to_owned(), claimed.join(","))].into());
    AccessReview {
        metadata: ObjectMeta {
            generate_name: Some(names::generate_name(request, words(decision).0)),
            namespace: Some(namespace.to_owned()),
            annotations,
            ..ObjectMeta::default()
        },
        spec: AccessReviewSpec {
            access_request: request.to_owned(),
            access_request_uid: None,
            duration: None,
            decision,
            reviewer: reviewer.username.clone(),
            comment: comment.filter(|c| !c.trim().is_empty()),
        },
        status: None,
    }
}

pub async fn run(
    session: &Session,
    name: &str,
    decision: ReviewDecision,
    comment: Option<String>,
    format: OutputFormat,
) -> Result<ExitCode> {
    let me = session.whoami().await?;
    let request = access_request::get(session, name).await?;
    if decision == ReviewDecision::Approve && request.spec.requester == me.username {
        bail!("you cannot approve your own AccessRequest {name}: ask another approver");
    }
    let phase = request.phase();
    if phase.is_terminal() {
        bail!("AccessRequest {name} is already {phase:?}: there is nothing to review");
    }
    let created = session
        .create(&build(name, &session.namespace, me, decision, comment))
        .await?;
    if !structured(format, &created)? {
        println!(
            "accessreview.passport.dev/{} created: you {} AccessRequest {name} (requested by {})",
            created.name_any(),
            words(decision).1,
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
        let carol = Identity {
            username: "carol".into(),
            groups: vec!["sre".to_owned(), "system:authenticated".to_owned()],
        };
        let review = build(
            "db",
            "team-a",
            &carol,
            ReviewDecision::Deny,
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
        assert_eq!(review.spec.decision, ReviewDecision::Deny);
        assert_eq!(review.spec.comment.as_deref(), Some("not during the freeze"));
        let blank = build("db", "team-a", &carol, ReviewDecision::Approve, Some("  ".into()));
        assert_eq!(blank.spec.comment, None);
    }
}

//! `approve` and `deny`: an AccessReview by you on someone's request.

use std::process::ExitCode;

use anyhow::{Result, bail};
use kube::{ResourceExt, api::ObjectMeta};
use passport_crds::{AccessRequest, AccessReview, AccessReviewSpec, ReviewDecision, common::annotations};

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

/// The AccessReview `approve`/`deny` creates for `request` as it stands: bound to its UID and to the
/// duration it asks for now, so that it counts for nothing else (a later extension needs its own).
pub fn build(
    request: &AccessRequest,
    namespace: &str,
    reviewer: &Identity,
    decision: ReviewDecision,
    comment: Option<String>,
) -> Result<AccessReview> {
    let name = request.name_any();
    let Some(uid) = request.metadata.uid.clone().filter(|u| !u.is_empty()) else {
        bail!("AccessRequest {namespace}/{name} has no metadata.uid: cannot name what the review is for");
    };
    let claimed = reviewer.claimed_groups();
    let annotations =
        (!claimed.is_empty()).then(|| [(annotations::REVIEWER_GROUPS.to_owned(), claimed.join(","))].into());
    Ok(AccessReview {
        metadata: ObjectMeta {
            generate_name: Some(names::generate_name(&name, words(decision).0)),
            namespace: Some(namespace.to_owned()),
            annotations,
            ..ObjectMeta::default()
        },
        spec: AccessReviewSpec {
            access_request: name,
            access_request_uid: Some(uid),
            duration: Some(request.spec.duration.clone()),
            decision,
            reviewer: reviewer.username.clone(),
            comment: comment.filter(|c| !c.trim().is_empty()),
        },
        status: None,
    })
}

/// What the review says it decided, e.g. `approved team-a/db (uid 1234) for 2h`, with what the
/// request already had when this approves an extension.
pub fn summary(review: &AccessReview, request: &AccessRequest, namespace: &str) -> String {
    let spec = &review.spec;
    let uid = spec.access_request_uid.as_deref().unwrap_or("?");
    let duration = spec.duration.as_deref().unwrap_or(&request.spec.duration);
    let what = format!("{namespace}/{} (uid {uid})", spec.access_request);
    let approved_before = request
        .status
        .as_ref()
        .and_then(|s| s.approved_duration.as_deref())
        .filter(|before| *before != duration);
    match (spec.decision, approved_before) {
        (ReviewDecision::Approve, Some(before)) => {
            format!("approved {what} for {duration} (an extension: {before} was approved before)")
        }
        (ReviewDecision::Approve, None) => format!("approved {what} for {duration}"),
        (ReviewDecision::Deny, _) => format!("denied {what}, which asks for {duration}"),
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
    let review = build(&request, &session.namespace, me, decision, comment)?;
    let created = session.create(&review).await?;
    if !structured(format, &created)? {
        println!(
            "accessreview.passport.dev/{} created: you {}, requested by {}",
            created.name_any(),
            summary(&created, &request, &session.namespace),
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
    use crate::fixtures::{INSTANCE, access_request};

    fn carol() -> Identity {
        Identity {
            username: "carol".into(),
            groups: vec!["sre".to_owned(), "system:authenticated".to_owned()],
        }
    }

    fn db(duration: &str) -> AccessRequest {
        let mut request = access_request(&[INSTANCE]);
        request.metadata.uid = Some("uid-1".into());
        request.spec.duration = duration.into();
        request
    }

    #[test]
    fn reviews_name_the_request_and_the_reviewer() -> Result<()> {
        let review = build(
            &db("1h"),
            "team-a",
            &carol(),
            ReviewDecision::Deny,
            Some("not during the freeze".into()),
        )?;
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
        let blank = build(
            &db("1h"),
            "team-a",
            &carol(),
            ReviewDecision::Approve,
            Some("  ".into()),
        )?;
        assert_eq!(blank.spec.comment, None);
        Ok(())
    }

    #[test]
    fn reviews_are_bound_to_the_uid_and_the_duration_asked_for_now() -> Result<()> {
        let review = build(&db("2h"), "team-a", &carol(), ReviewDecision::Approve, None)?;
        assert_eq!(review.spec.access_request_uid.as_deref(), Some("uid-1"));
        assert_eq!(review.spec.duration.as_deref(), Some("2h"));
        let mut unsaved = db("1h");
        unsaved.metadata.uid = None;
        let err = build(&unsaved, "team-a", &carol(), ReviewDecision::Approve, None).expect_err("no uid");
        assert!(err.to_string().contains("no metadata.uid"), "{err}");
        Ok(())
    }

    #[test]
    fn the_summary_says_what_was_approved() -> Result<()> {
        let request = db("2h");
        let review = build(&request, "team-a", &carol(), ReviewDecision::Approve, None)?;
        assert_eq!(
            summary(&review, &request, "team-a"),
            "approved team-a/db (uid uid-1) for 2h"
        );
        let mut extended = db("3h");
        extended.status = Some(passport_crds::access_request::AccessRequestStatus {
            approved_duration: Some("2h".into()),
            ..Default::default()
        });
        let review = build(&extended, "team-a", &carol(), ReviewDecision::Approve, None)?;
        assert_eq!(
            summary(&review, &extended, "team-a"),
            "approved team-a/db (uid uid-1) for 3h (an extension: 2h was approved before)"
        );
        let review = build(&request, "team-a", &carol(), ReviewDecision::Deny, None)?;
        assert_eq!(
            summary(&review, &request, "team-a"),
            "denied team-a/db (uid uid-1), which asks for 2h"
        );
        Ok(())
    }
}

//! What the operator says on AccessReviews and AccessPolicies themselves: whether a review counted
//! (condition Accepted) and whether a policy can do what it says (condition Ready), and why not.

use jiff::Timestamp;
use passport_crds::{
    AccessPolicy, AccessRequest, AccessReview,
    conditions::{Update, types::*},
};

use super::{Question, reviews_since, verdict};

/// The Accepted condition of `review`, given the request it names (if it exists) as it stands.
pub fn review_accepted<'a>(
    review: &AccessReview,
    request: Option<&AccessRequest>,
    policies: &[AccessPolicy],
) -> Update<'a> {
    let not = |reason: &'a str, message: String| Update::new(ACCEPTED, false, reason).message(message);
    let Some(request) = request else {
        return not(
            "NoSuchRequest",
            format!(
                "no AccessRequest {} in this namespace",
                review.spec.access_request
            ),
        );
    };
    let (Ok(requested), Ok(approved)) = (
        request.spec.access_duration(),
        request.status.clone().unwrap_or_default().approved_access(),
    ) else {
        return not(
            "InvalidRequest",
            "the AccessRequest has an unreadable duration".into(),
        );
    };
    let since = reviews_since(request, requested, approved);
    let created = request
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let question = Question {
        requested,
        since: since.unwrap_or(created),
        extending: approved.is_some_and(|a| a < requested),
    };
    if let Some(Err(why)) = verdict(review, request, question) {
        return not("NotCounted", format!("this review does not count: {why}"));
    }
    let groups = super::annotated_groups(&review.metadata, super::REVIEWER_GROUPS_ANNOTATION);
    let may_review = policies
        .iter()
        .any(|p| p.spec.approval.approvers.matches(&review.spec.reviewer, &groups));
    if !may_review {
        return not(
            "NotAnApprover",
            format!(
                "{} is not an approver of any AccessPolicy in this namespace (spec.approval.approvers)",
                review.spec.reviewer
            ),
        );
    }
    Update::new(ACCEPTED, true, "Counted")
}

/// The Ready condition of `policy`: whether it can ever approve anything, and if not, the field.
pub fn policy_ready<'a>(policy: &AccessPolicy, account_exists: impl Fn(&str) -> bool) -> Update<'a> {
    let p = &policy.spec;
    let mut problems: Vec<String> = Vec::new();
    if let Err(err) = p.max_access() {
        problems.push(err.to_string());
    }
    if let Err(err) = p.pending_timeout_duration() {
        problems.push(err.to_string());
    }
    let named = p.approval.approvers.users.len();
    if p.auto_approve.is_empty()
        && p.approval.approvers.groups.is_empty()
        && named < usize::from(p.approval.required.max(1))
    {
        problems.push(format!(
            "spec.approval.required is {} but spec.approval.approvers names {named} user(s) and no group: \
             no request can ever be approved",
            p.approval.required.max(1)
        ));
    }
    if p.targets.instance_ids.is_empty() && p.targets.tags.is_empty() {
        problems.push("spec.targets selects no instance: name instanceIds or tags".into());
    }
    if p.requesters.is_empty() {
        problems.push("spec.requesters names nobody".into());
    }
    if let Some(account) = p.default_account.as_deref().filter(|a| !account_exists(a)) {
        problems.push(format!(
            "spec.defaultAccount names AwsAccount {account}, which does not exist"
        ));
    }
    if problems.is_empty() {
        Update::new(READY, true, "Valid")
    } else {
        Update::new(READY, false, "Invalid").message(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use passport_crds::{ReviewDecision, conditions::ConditionStatus};

    use super::*;
    use crate::fixtures::{policy, request, review};

    fn status_reason(update: &Update<'_>) -> (ConditionStatus, String) {
        (update.status, update.reason.to_owned())
    }

    #[test]
    fn a_review_of_a_missing_request_says_so() {
        let r = review("carol", ReviewDecision::Approve);
        let u = review_accepted(&r, None, &[policy("ops")]);
        assert_eq!(
            status_reason(&u),
            (ConditionStatus::False, "NoSuchRequest".into())
        );
    }

    #[test]
    fn a_review_by_an_approver_counts_and_one_by_anyone_else_says_why_not() {
        let req = request("req");
        let ok = review_accepted(
            &review("carol", ReviewDecision::Approve),
            Some(&req),
            &[policy("ops")],
        );
        assert_eq!(status_reason(&ok), (ConditionStatus::True, "Counted".into()));
        let stranger = review_accepted(
            &review("mallory", ReviewDecision::Approve),
            Some(&req),
            &[policy("ops")],
        );
        assert_eq!(
            status_reason(&stranger),
            (ConditionStatus::False, "NotAnApprover".into())
        );
        assert!(stranger.message.contains("mallory"), "{}", stranger.message);
    }

    #[test]
    fn a_review_of_another_request_uid_is_not_counted() {
        let req = request("req");
        let mut r = review("carol", ReviewDecision::Approve);
        r.spec.access_request_uid = Some("an-older-request".into());
        let u = review_accepted(&r, Some(&req), &[policy("ops")]);
        assert_eq!(status_reason(&u), (ConditionStatus::False, "NotCounted".into()));
    }

    #[test]
    fn a_sound_policy_is_ready() {
        let u = policy_ready(&policy("ops"), |_| true);
        assert_eq!(status_reason(&u), (ConditionStatus::True, "Valid".into()));
    }

    #[test]
    fn a_policy_that_can_never_approve_names_the_fields() {
        let mut p = policy("ops");
        p.spec.approval.required = 5;
        p.spec.default_account = Some("gone".into());
        let u = policy_ready(&p, |_| false);
        assert_eq!(u.status, ConditionStatus::False);
        assert!(u.message.contains("spec.approval.required is 5"), "{}", u.message);
        assert!(u.message.contains("AwsAccount gone"), "{}", u.message);
    }
}

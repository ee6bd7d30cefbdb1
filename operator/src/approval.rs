//! Whether a request is approved, from the namespace's AccessPolicies and AccessReviews. Secure by
//! default: no policy that covers the request means it waits, and times out as Denied.
//!
//! A policy covers a request when it lists the requester (by user or group), names every target by
//! instance id, allows the duration, and has the ticket it requires. Then either one of its
//! `autoApprove` rules matches, or enough of its approvers (never the requester) approve with an
//! AccessReview; any approver's Deny denies.

use std::{collections::BTreeSet, time::Duration};

use jiff::{SignedDuration, Timestamp};
use passport_crds::{AccessPolicy, AccessRequest, AccessReview, Decision, duration::parse_go_duration};

use crate::lifecycle::{Approval, access_duration};

/// How long a request waits for approval when no policy says otherwise.
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(3600);

/// The annotation carrying the requester's groups, set by `kubectl passport request` and checked at
/// admission against the creating user's real groups.
pub const REQUESTER_GROUPS_ANNOTATION: &str = passport_crds::common::annotations::REQUESTER_GROUPS;

/// The annotation carrying a reviewer's groups, set by `kubectl passport approve|deny` and checked at
/// admission the same way.
pub const REVIEWER_GROUPS_ANNOTATION: &str = passport_crds::common::annotations::REVIEWER_GROUPS;

/// The requester's groups, as admission verified them.
pub fn requester_groups(request: &AccessRequest) -> Vec<String> {
    annotated_groups(&request.metadata, REQUESTER_GROUPS_ANNOTATION)
}

fn annotated_groups(metadata: &kube::api::ObjectMeta, annotation: &str) -> Vec<String> {
    metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotation))
        .map(|groups| {
            groups
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the request, as its spec now stands, is approved. Only reviews made since `reviews_since`
/// count: the request's creation for a new request (a review of an older request of the same name
/// never carries over), the last approval for an extension.
pub fn evaluate(
    request: &AccessRequest,
    policies: &[AccessPolicy],
    reviews: &[AccessReview],
    reviews_since: Timestamp,
    now: Timestamp,
) -> Approval {
    let spec = &request.spec;
    let groups = requester_groups(request);
    let created = request.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let covering: Vec<&AccessPolicy> = policies.iter().filter(|p| covers(p, request, &groups)).collect();
    let timeout = covering
        .iter()
        .filter_map(|p| parse_go_duration(&p.spec.pending_timeout).ok())
        .min()
        .unwrap_or(DEFAULT_PENDING_TIMEOUT);
    let deadline = SignedDuration::try_from(timeout)
        .ok()
        .and_then(|d| created.checked_add(d).ok())
        .unwrap_or(created);

    if covering.is_empty() {
        let namespace = request.metadata.namespace.as_deref().unwrap_or_default();
        return Approval::Waiting {
            reason: "NoPolicy".into(),
            message: format!(
                "no AccessPolicy in namespace {namespace} lets {} request these instances for {}{}; \
                 ask an administrator for one, or change the request",
                spec.requester,
                spec.duration,
                if spec.ticket.is_none() {
                    " without a ticket"
                } else {
                    ""
                },
            ),
            deadline,
        };
    }
    if let Some(policy) = covering.iter().find(|p| auto_approves(p, request, &groups)) {
        return Approval::Approved {
            by: format!("auto-approval in AccessPolicy {}", name(policy)),
        };
    }
    let reviews: Vec<&AccessReview> = reviews
        .iter()
        .filter(|r| Some(r.spec.access_request.as_str()) == request.metadata.name.as_deref())
        .filter(|r| r.spec.reviewer != spec.requester)
        .filter(|r| {
            r.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| t.0 >= reviews_since)
        })
        .collect();
    for policy in &covering {
        let approvers = &policy.spec.approval.approvers;
        let may_review = |r: &&&AccessReview| {
            approvers.matches(
                &r.spec.reviewer,
                &annotated_groups(&r.metadata, REVIEWER_GROUPS_ANNOTATION),
            )
        };
        if let Some(denial) = reviews
            .iter()
            .filter(may_review)
            .find(|r| r.spec.decision == Decision::Deny)
        {
            return Approval::Denied {
                by: denial.spec.reviewer.clone(),
                message: denial
                    .spec
                    .comment
                    .clone()
                    .unwrap_or_else(|| "no reason given".into()),
            };
        }
        let approved_by: BTreeSet<&str> = reviews
            .iter()
            .filter(may_review)
            .filter(|r| r.spec.decision == Decision::Approve)
            .map(|r| r.spec.reviewer.as_str())
            .collect();
        let required = usize::from(policy.spec.approval.required.max(1));
        if approved_by.len() >= required {
            let by = approved_by.into_iter().collect::<Vec<_>>().join(", ");
            return Approval::Approved { by };
        }
    }
    Approval::Waiting {
        reason: "AwaitingApproval".into(),
        message: format!(
            "waiting for approval under AccessPolicy {}",
            covering.iter().map(|p| name(p)).collect::<Vec<_>>().join(", ")
        ),
        deadline,
    }
}

fn covers(policy: &AccessPolicy, request: &AccessRequest, groups: &[String]) -> bool {
    let (p, r) = (&policy.spec, &request.spec);
    let duration_ok = parse_go_duration(&p.max_duration).is_ok_and(|max| access_duration(r) <= max);
    p.requesters.matches(&r.requester, groups)
        && r.targets
            .iter()
            .all(|t| p.targets.instance_ids.contains(&t.instance_id))
        && duration_ok
        && (!p.require_ticket || r.ticket.is_some())
}

fn auto_approves(policy: &AccessPolicy, request: &AccessRequest, groups: &[String]) -> bool {
    policy.spec.auto_approve.iter().any(|rule| {
        rule.requesters.matches(&request.spec.requester, groups)
            && rule.max_duration.as_deref().is_none_or(|max| {
                parse_go_duration(max).is_ok_and(|max| access_duration(&request.spec) <= max)
            })
    })
}

fn name(policy: &AccessPolicy) -> String {
    policy.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;

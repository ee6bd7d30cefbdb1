//! Whether a request is approved, from the namespace's AccessPolicies and AccessReviews. Secure by
//! default: no policy that covers the request means it waits, and times out as Denied.
//!
//! A policy covers a request when it lists the requester (by user or group), names every target by
//! instance id, allows the duration, and has the ticket it requires. Then either one of its
//! `autoApprove` rules matches, or enough of its approvers (never the requester) approve with an
//! AccessReview; any approver's Deny denies.

mod judged;
mod refusal;
mod review;
mod window;

use std::{collections::BTreeSet, time::Duration};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use passport_crds::{AccessPolicy, AccessRequest, AccessReview, ReviewDecision, common::annotations};

pub use judged::{policy_ready, review_accepted};
pub use refusal::refusal;
pub use review::{Question, verdict};
pub use window::reviews_since;

use crate::time::add;

/// Where approval stands, as the approval rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Approved {
        by: String,
    },
    Waiting {
        reason: WaitReason,
        message: String,
        deadline: Timestamp,
    },
    /// A reviewer denied it.
    Denied {
        by: String,
        message: String,
    },
    /// No policy can ever approve it as it stands (over a limit, an untrusted applier): said at once.
    Refused {
        message: String,
    },
}

/// Why a request waits: the Approved condition's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
pub enum WaitReason {
    /// No AccessPolicy of the namespace covers the request.
    NoPolicy,
    /// A policy covers it; reviews are still missing.
    AwaitingApproval,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// EC2 tags of the request's targets, by instance id: what policies selecting by tag need to see.
pub type InstanceTags = std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

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

fn annotated_groups(metadata: &ObjectMeta, annotation: &str) -> Vec<String> {
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

/// Whether the request is approved for `question.requested` (its `spec.duration`, parsed). Only the
/// reviews that [`verdict`] counts for this question count.
pub fn evaluate(
    request: &AccessRequest,
    question: Question,
    policies: &[AccessPolicy],
    reviews: &[AccessReview],
    tags: &InstanceTags,
    now: Timestamp,
) -> Approval {
    let spec = &request.spec;
    let requested = question.requested;
    let groups = requester_groups(request);
    let created = request.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let covering: Vec<&AccessPolicy> = policies
        .iter()
        .filter(|p| covers(p, request, requested, &groups, tags))
        .collect();
    // A policy with an unreadable timeout (the schema rejects those) does not lengthen the wait.
    let timeout = covering
        .iter()
        .filter_map(|p| p.spec.pending_timeout_duration().ok())
        .min()
        .unwrap_or(DEFAULT_PENDING_TIMEOUT);
    let deadline = add(created, timeout);

    if covering.is_empty() {
        if let Some(message) = refusal(policies, request, requested, &groups, tags) {
            return Approval::Refused { message };
        }
        let namespace = request.metadata.namespace.as_deref().unwrap_or_default();
        return Approval::Waiting {
            reason: WaitReason::NoPolicy,
            message: format!(
                "no AccessPolicy in namespace {namespace} lets {} request access; ask an administrator for one",
                spec.requester,
            ),
            deadline,
        };
    }
    // The merge approves what was merged; an extension needs reviews (or an auto-approval rule).
    if let Some(applier) = applier(request).filter(|_| !question.extending) {
        let applier_groups = annotated_groups(&request.metadata, annotations::APPLIER_GROUPS);
        return match covering
            .iter()
            .find(|p| p.spec.gitops_appliers.matches(&applier, &applier_groups))
        {
            Some(policy) => Approval::Approved {
                by: format!(
                    "the merge applied by {applier}, trusted by AccessPolicy {}",
                    name(policy)
                ),
            },
            None => Approval::Refused {
                message: format!(
                    "applied by {applier} for {}, and no AccessPolicy in this namespace that covers the request \
                     trusts {applier} as a GitOps applier (spec.gitopsAppliers)",
                    spec.requester
                ),
            },
        };
    }
    if let Some(policy) = covering
        .iter()
        .find(|p| auto_approves(p, request, requested, &groups))
    {
        return Approval::Approved {
            by: format!("auto-approval in AccessPolicy {}", name(policy)),
        };
    }
    let reviews = counted(request, question, reviews);
    if let Some(denial) = denial(&covering, &reviews) {
        return denial;
    }
    for policy in &covering {
        let approved_by: BTreeSet<&str> = reviews
            .iter()
            .filter(|r| may_review(policy, r))
            .filter(|r| r.spec.decision == ReviewDecision::Approve)
            .map(|r| r.spec.reviewer.as_str())
            .collect();
        let required = usize::from(policy.spec.approval.required.max(1));
        if approved_by.len() >= required {
            let by = approved_by.into_iter().collect::<Vec<_>>().join(", ");
            return Approval::Approved { by };
        }
    }
    Approval::Waiting {
        reason: WaitReason::AwaitingApproval,
        message: format!(
            "waiting for approval under AccessPolicy {}",
            covering.iter().map(|p| name(p)).collect::<Vec<_>>().join(", ")
        ),
        deadline,
    }
}

/// A Deny after approval ends the request: `Some(Denied)` if an approver of a policy covering the
/// request (as approved) denied it.
///
/// Any approver of any policy that lists the requester may deny: what a policy covers today (its
/// maximum, its targets, the instances' tags) may have changed since, and must not silence a Deny.
pub fn denied_after_approval(
    request: &AccessRequest,
    question: Question,
    policies: &[AccessPolicy],
    reviews: &[AccessReview],
) -> Option<Approval> {
    let groups = requester_groups(request);
    let listing: Vec<&AccessPolicy> = policies
        .iter()
        .filter(|p| p.spec.requesters.matches(&request.spec.requester, &groups))
        .collect();
    denial(&listing, &counted(request, question, reviews))
}

/// The GitOps applier that created the request for someone else, if one did.
fn applier(request: &AccessRequest) -> Option<String> {
    let applied_by = request
        .metadata
        .annotations
        .as_ref()?
        .get(annotations::APPLIED_BY)?;
    (applied_by.as_str() != request.spec.requester).then(|| applied_by.clone())
}

fn counted<'a>(
    request: &AccessRequest,
    question: Question,
    reviews: &'a [AccessReview],
) -> Vec<&'a AccessReview> {
    reviews
        .iter()
        .filter(|r| matches!(verdict(r, request, question), Some(Ok(()))))
        .collect()
}

fn may_review(policy: &AccessPolicy, review: &AccessReview) -> bool {
    policy.spec.approval.approvers.matches(
        &review.spec.reviewer,
        &annotated_groups(&review.metadata, REVIEWER_GROUPS_ANNOTATION),
    )
}

fn denial(covering: &[&AccessPolicy], reviews: &[&AccessReview]) -> Option<Approval> {
    let denial = reviews
        .iter()
        .filter(|r| r.spec.decision == ReviewDecision::Deny)
        .find(|r| covering.iter().any(|p| may_review(p, r)))?;
    Some(Approval::Denied {
        by: denial.spec.reviewer.clone(),
        message: denial
            .spec
            .comment
            .clone()
            .unwrap_or_else(|| "no reason given".into()),
    })
}

/// An invalid policy (say, an unreadable maxDuration) covers nothing: it can only ever refuse.
fn covers(
    policy: &AccessPolicy,
    request: &AccessRequest,
    requested: Duration,
    groups: &[String],
    tags: &InstanceTags,
) -> bool {
    let (p, r) = (&policy.spec, &request.spec);
    let duration_ok = p.max_access().is_ok_and(|max| requested <= max);
    p.requesters.matches(&r.requester, groups)
        && r.targets
            .iter()
            .all(|t| p.targets.selects(&t.instance_id, tags.get(&t.instance_id)))
        && duration_ok
        && (!p.require_ticket || r.ticket.is_some())
}

fn auto_approves(
    policy: &AccessPolicy,
    request: &AccessRequest,
    requested: Duration,
    groups: &[String],
) -> bool {
    policy.spec.auto_approve.iter().any(|rule| {
        rule.requesters.matches(&request.spec.requester, groups)
            && rule
                .max_access()
                .is_ok_and(|max| max.is_none_or(|max| requested <= max))
    })
}

fn name(policy: &AccessPolicy) -> String {
    policy.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use passport_crds::{
    ReviewDecision as Decision,
    access_policy::AutoApproveRule,
    access_request::Target,
    common::{Subjects, Time, annotations},
};

use super::*;
use crate::fixtures::{self, at, review, subjects};

fn request(requester: &str, groups: Option<&str>) -> AccessRequest {
    let mut request = fixtures::request("req");
    request.spec.requester = requester.to_owned();
    if let Some(groups) = groups {
        request.metadata.annotations = Some(BTreeMap::from([(
            REQUESTER_GROUPS_ANNOTATION.to_owned(),
            groups.to_owned(),
        )]));
    }
    request
}

/// [`evaluate`] for the request's own `spec.duration`.
fn eval(
    request: &AccessRequest,
    policies: &[AccessPolicy],
    reviews: &[AccessReview],
    since: Timestamp,
    now: Timestamp,
) -> Approval {
    let requested = request.spec.access_duration().expect("valid duration");
    let question = Question {
        requested,
        since,
        extending: false,
    };
    evaluate(request, question, policies, reviews, &InstanceTags::new(), now)
}

fn policy(auto: Option<Subjects>) -> AccessPolicy {
    let mut policy = fixtures::policy("ops");
    policy.spec.auto_approve = auto
        .map(|requesters| {
            vec![AutoApproveRule {
                requesters,
                max_duration: None,
            }]
        })
        .unwrap_or_default();
    policy
}

#[test]
fn no_policy_waits_with_the_default_deadline_and_says_why() {
    match eval(&request("alice", None), &[], &[], at(0), at(5)) {
        Approval::Waiting {
            reason,
            message,
            deadline,
        } => {
            assert_eq!(reason, WaitReason::NoPolicy);
            assert!(
                message.contains("team-a") && message.contains("alice"),
                "{message}"
            );
            assert_eq!(deadline, at(3600));
        }
        other => panic!("expected Waiting, got {other:?}"),
    }
}

#[test]
fn auto_approval_by_user_or_verified_group() {
    let by_user = policy(Some(subjects(&["alice"], &[])));
    assert!(matches!(
        eval(&request("alice", None), &[by_user], &[], at(0), at(1)),
        Approval::Approved { .. }
    ));
    let by_group = policy(Some(subjects(&[], &["developers"])));
    let bob = request("bob", Some("developers,system:authenticated"));
    assert!(matches!(
        eval(&bob, std::slice::from_ref(&by_group), &[], at(0), at(1)),
        Approval::Approved { .. }
    ));
    let bob_without_groups = request("bob", None);
    assert!(matches!(
        eval(&bob_without_groups, &[by_group], &[], at(0), at(1)),
        Approval::Waiting { .. }
    ));
}

#[test]
fn a_request_no_policy_covers_is_refused_at_once_naming_the_limit() {
    let auto = Some(subjects(&["alice"], &[]));
    let refused = |approval: Approval| match approval {
        Approval::Refused { message } => message,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut other_target = request("alice", None);
    other_target.spec.targets = vec![Target {
        instance_id: "i-0fedcba9876543210".into(),
    }];
    let why = refused(eval(&other_target, &[policy(auto.clone())], &[], at(0), at(1)));
    assert!(why.contains("does not allow i-0fedcba9876543210"), "{why}");
    let mut too_long = request("alice", None);
    too_long.spec.duration = "5h".into();
    let why = refused(eval(&too_long, &[policy(auto.clone())], &[], at(0), at(1)));
    assert_eq!(why, "at most 4h under AccessPolicy ops");
    let mut needs_ticket = policy(auto);
    needs_ticket.spec.require_ticket = true;
    let why = refused(eval(&request("alice", None), &[needs_ticket], &[], at(0), at(1)));
    assert!(why.contains("requires a ticket"), "{why}");
}

#[test]
fn a_gitops_request_is_approved_only_under_a_policy_trusting_its_applier() {
    let mut applied = request("alice", None);
    applied.metadata.annotations = Some(BTreeMap::from([(
        annotations::APPLIED_BY.to_owned(),
        "system:serviceaccount:argocd:argocd-application-controller".to_owned(),
    )]));
    let untrusted = eval(&applied, &[policy(None)], &[], at(0), at(1));
    assert!(
        matches!(&untrusted, Approval::Refused { message } if message.contains("spec.gitopsAppliers")),
        "{untrusted:?}"
    );
    let mut trusting = policy(None);
    trusting.spec.gitops_appliers.users =
        vec!["system:serviceaccount:argocd:argocd-application-controller".into()];
    assert!(matches!(
        eval(&applied, &[trusting], &[], at(0), at(1)),
        Approval::Approved { .. }
    ));
}

#[test]
fn a_deny_after_approval_is_found_for_the_approved_duration() {
    let req = request("alice", None);
    let question = Question {
        requested: req.spec.access_duration().expect("valid"),
        since: at(0),
        extending: false,
    };
    assert_eq!(denied_after_approval(&req, question, &[policy(None)], &[]), None);
    let deny = review("carol", Decision::Deny);
    assert!(matches!(
        denied_after_approval(&req, question, &[policy(None)], &[deny]),
        Some(Approval::Denied { .. })
    ));
}

#[test]
fn reviews_count_distinct_approvers_never_the_requester() {
    let p = policy(None);
    let req = request("alice", None);
    let one = [
        review("carol", Decision::Approve),
        review("alice", Decision::Approve),
    ];
    match eval(&req, std::slice::from_ref(&p), &one, at(0), at(1)) {
        Approval::Waiting { reason, deadline, .. } => {
            assert_eq!(reason, WaitReason::AwaitingApproval);
            assert_eq!(deadline, at(1800));
        }
        other => panic!("expected Waiting, got {other:?}"),
    }
    let two = [
        review("carol", Decision::Approve),
        review("dave", Decision::Approve),
    ];
    assert!(matches!(
        eval(&req, std::slice::from_ref(&p), &two, at(0), at(1)),
        Approval::Approved { .. }
    ));
    let outsider = [
        review("carol", Decision::Approve),
        review("mallory", Decision::Approve),
    ];
    assert!(matches!(
        eval(&req, std::slice::from_ref(&p), &outsider, at(0), at(1)),
        Approval::Waiting { .. }
    ));
    let denied = [review("carol", Decision::Approve), review("dave", Decision::Deny)];
    assert!(matches!(eval(&req, &[p], &denied, at(0), at(1)), Approval::Denied { by, .. } if by == "dave"));
}

#[test]
fn reviews_older_than_the_request_or_last_approval_do_not_count() {
    let p = policy(None);
    let req = request("alice", None);
    let mut stale = [
        review("carol", Decision::Approve),
        review("dave", Decision::Approve),
    ];
    for r in &mut stale {
        r.metadata.creation_timestamp = Some(Time(at(-60)));
    }
    assert!(matches!(
        eval(&req, std::slice::from_ref(&p), &stale, at(0), at(1)),
        Approval::Waiting { .. }
    ));
    let fresh = [
        review("carol", Decision::Approve),
        review("dave", Decision::Approve),
    ];
    assert!(matches!(
        eval(&req, std::slice::from_ref(&p), &fresh, at(2), at(3)),
        Approval::Waiting { .. }
    ));
    assert!(matches!(
        eval(&req, &[p], &fresh, at(1), at(3)),
        Approval::Approved { .. }
    ));
}

#[test]
fn approvers_by_verified_group() {
    let mut p = policy(None);
    p.spec.approval.approvers = subjects(&[], &["sre"]);
    let req = request("alice", None);
    let mut by_group = [
        review("carol", Decision::Approve),
        review("erin", Decision::Approve),
    ];
    assert!(matches!(
        eval(&req, std::slice::from_ref(&p), &by_group, at(0), at(2)),
        Approval::Waiting { .. }
    ));
    for r in &mut by_group {
        r.metadata.annotations = Some(BTreeMap::from([(
            REVIEWER_GROUPS_ANNOTATION.to_owned(),
            "sre".to_owned(),
        )]));
    }
    assert!(matches!(
        eval(&req, &[p], &by_group, at(0), at(2)),
        Approval::Approved { .. }
    ));
}

#[test]
fn a_policy_selecting_by_tag_covers_instances_carrying_every_tag() {
    let mut by_tag = policy(Some(subjects(&["alice"], &[])));
    by_tag.spec.targets.instance_ids.clear();
    by_tag.spec.targets.tags = BTreeMap::from([("env".to_owned(), "staging".to_owned())]);
    let req = request("alice", None);
    let target = req.spec.targets[0].instance_id.clone();
    let tagged = |pairs: &[(&str, &str)]| -> InstanceTags {
        BTreeMap::from([(
            target.clone(),
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )])
    };
    let question = Question {
        requested: req.spec.access_duration().expect("valid"),
        since: at(0),
        extending: false,
    };
    let staging = tagged(&[("env", "staging"), ("team", "payments")]);
    assert!(matches!(
        evaluate(&req, question, &[by_tag.clone()], &[], &staging, at(1)),
        Approval::Approved { .. }
    ));
    let prod = tagged(&[("env", "prod")]);
    assert!(matches!(
        evaluate(&req, question, &[by_tag], &[], &prod, at(1)),
        Approval::Refused { .. }
    ));
}

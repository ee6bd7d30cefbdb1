//! `request --dry-run`: what the operator would decide about the request, without creating it. The
//! request is built exactly as `request` builds it (groups claimed in its annotation), the apiserver
//! is asked to admit it without storing it, and the namespace's AccessPolicies go through
//! `passport_core::approval::evaluate`: the operator's own decision code, with no reviews yet.

use std::{process::ExitCode, slice, time::Duration};

use anyhow::Result;
use jiff::Timestamp;
use kube::{ResourceExt, api::ListParams};
use passport_core::approval::{self, Approval, Question, WaitReason};
use passport_crds::{AccessPolicy, AccessRequest, common::Subjects, duration::format_go_duration};
use serde::Serialize;

use crate::{
    cluster::session::Session,
    ui::format::{OutputFormat, structured},
};

/// What would happen to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// An automatic-approval rule approves it at once.
    AutoApproved,
    /// A policy covers it; it waits for approvers' reviews.
    NeedsApproval,
    /// Over a policy's limits (or otherwise never approvable as it stands): refused at once.
    Refused,
    /// No policy lists the requester: it waits for an administrator, then times out Denied.
    NoPolicy,
}

/// One AccessPolicy that covers the request, and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applies {
    pub policy: String,
    pub max_duration: String,
    /// One of its automatic-approval rules approves the request.
    pub auto_approves: bool,
    /// Distinct approvers needed (when not auto-approved).
    pub approvals_required: u8,
    /// Who may approve (the requester never counts for their own request).
    pub approvers: Subjects,
}

/// The dry run's answer (`-o json|yaml` prints it as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub dry_run: bool,
    pub namespace: String,
    pub name: String,
    pub requester: String,
    pub requester_groups: Vec<String>,
    pub targets: Vec<String>,
    /// `spec.duration` as the operator reads it; the clock starts at activation.
    pub duration: String,
    pub decision: Decision,
    /// The operator's words for the decision (its `Approved` condition message).
    pub message: String,
    /// The AccessPolicies that cover the request (any one of them suffices).
    pub policies: Vec<Applies>,
    /// How long it would wait for approval before ending Denied, when it would wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_timeout: Option<String>,
    /// What the workstation cannot judge: policies that select instances by EC2 tags, which only the
    /// operator reads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What the operator would decide about `request` (as it would be created, no reviews yet) under
/// `policies`, at `now`.
pub fn preview(request: &AccessRequest, policies: &[AccessPolicy], now: Timestamp) -> Result<Preview> {
    let requested = request.spec.access_duration()?;
    let question = Question {
        requested,
        since: now,
        extending: false,
    };
    let alone = |policy: &AccessPolicy| {
        approval::evaluate(request, question, slice::from_ref(policy), &[], &no_tags(), now)
    };
    let applies: Vec<Applies> = policies
        .iter()
        .filter_map(|policy| {
            let auto_approves = match alone(policy) {
                Approval::Approved { .. } => true,
                Approval::Waiting {
                    reason: WaitReason::AwaitingApproval,
                    ..
                } => false,
                _ => return None,
            };
            let mut approvers = policy.spec.approval.approvers.clone();
            approvers.users.retain(|u| *u != request.spec.requester);
            Some(Applies {
                policy: policy.name_any(),
                max_duration: policy.spec.max_duration.clone(),
                auto_approves,
                approvals_required: policy.spec.approval.required.max(1),
                approvers,
            })
        })
        .collect();
    let waits = |deadline: Timestamp| {
        let secs = deadline.as_second().saturating_sub(now.as_second()).max(0);
        Some(format_go_duration(Duration::from_secs(secs.unsigned_abs())))
    };
    let (decision, message, pending_timeout) =
        match approval::evaluate(request, question, policies, &[], &no_tags(), now) {
            Approval::Approved { by } => (Decision::AutoApproved, format!("approved by {by}"), None),
            Approval::Refused { message } => (Decision::Refused, message, None),
            // No review exists yet, so nobody has denied it; said as a refusal all the same.
            Approval::Denied { by, message } => {
                (Decision::Refused, format!("denied by {by}: {message}"), None)
            }
            Approval::Waiting {
                reason: WaitReason::NoPolicy,
                message,
                deadline,
            } => (Decision::NoPolicy, message, waits(deadline)),
            Approval::Waiting {
                message, deadline, ..
            } => (Decision::NeedsApproval, message, waits(deadline)),
        };
    let notes = tag_notes(request, policies, &applies);
    Ok(Preview {
        dry_run: true,
        namespace: request.namespace().unwrap_or_default(),
        name: request.name_any(),
        requester: request.spec.requester.clone(),
        requester_groups: approval::requester_groups(request),
        targets: request
            .spec
            .targets
            .iter()
            .map(|t| t.instance_id.clone())
            .collect(),
        duration: format_go_duration(requested),
        decision,
        message,
        policies: applies,
        pending_timeout,
        notes,
    })
}

/// A note for each policy listing the requester that selects some target only by EC2 tags: judged
/// here without tags (so as not covering it), it may cover the request when the operator reads them.
fn tag_notes(request: &AccessRequest, policies: &[AccessPolicy], applies: &[Applies]) -> Vec<String> {
    let groups = approval::requester_groups(request);
    policies
        .iter()
        .filter(|p| !p.spec.targets.tags.is_empty())
        .filter(|p| p.spec.requesters.matches(&request.spec.requester, &groups))
        .filter(|p| !applies.iter().any(|a| a.policy == p.name_any()))
        .filter_map(|p| {
            let unlisted: Vec<&str> = request
                .spec
                .targets
                .iter()
                .map(|t| t.instance_id.as_str())
                .filter(|id| !p.spec.targets.instance_ids.iter().any(|listed| listed == id))
                .collect();
            (!unlisted.is_empty()).then(|| {
                let tags: Vec<String> = p
                    .spec
                    .targets
                    .tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!(
                    "AccessPolicy {} selects instances by EC2 tags ({}), which only the operator reads: \
                     if {} carry them, it may cover this request",
                    p.name_any(),
                    tags.join(", "),
                    unlisted.join(", ")
                )
            })
        })
        .collect()
}

/// `users a, b or groups c` (empty when nobody is listed).
fn who(subjects: &Subjects) -> String {
    let mut parts = Vec::new();
    if !subjects.users.is_empty() {
        parts.push(format!(
            "{} {}",
            if subjects.users.len() == 1 {
                "user"
            } else {
                "users"
            },
            subjects.users.join(", ")
        ));
    }
    if !subjects.groups.is_empty() {
        parts.push(format!(
            "members of {} {}",
            if subjects.groups.len() == 1 {
                "group"
            } else {
                "groups"
            },
            subjects.groups.join(", ")
        ));
    }
    parts.join(" or ")
}

/// What approval the request still needs under one policy.
fn needs(applies: &Applies) -> String {
    let n = applies.approvals_required;
    let approvals = if n == 1 { "approval" } else { "approvals" };
    let from = who(&applies.approvers);
    if from.is_empty() {
        format!(
            "AccessPolicy {} lists no approvers other than you: nobody can approve it",
            applies.policy
        )
    } else {
        format!(
            "{n} {approvals} from {from} under AccessPolicy {}",
            applies.policy
        )
    }
}

/// The preview for people, one fact a line.
pub fn lines(preview: &Preview) -> Vec<String> {
    let groups = if preview.requester_groups.is_empty() {
        String::new()
    } else {
        format!(" (groups {})", preview.requester_groups.join(", "))
    };
    let mut out = vec![
        format!(
            "Dry run: AccessRequest {}/{} was not created.",
            preview.namespace, preview.name
        ),
        format!(
            "Requester:  {}{groups}, on {}",
            preview.requester,
            preview.targets.join(", ")
        ),
    ];
    let policies = if preview.policies.is_empty() {
        "none covers this request".to_owned()
    } else {
        preview
            .policies
            .iter()
            .map(|a| format!("{} (at most {})", a.policy, a.max_duration))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push(format!("Policy:     {policies}"));
    out.push(format!(
        "Duration:   {}, counted from activation",
        preview.duration
    ));
    let waiting = preview
        .pending_timeout
        .as_deref()
        .map(|t| format!("; it would wait up to {t}, then end Denied"))
        .unwrap_or_default();
    let decision = match preview.decision {
        Decision::AutoApproved => format!("auto-approved ({})", preview.message),
        Decision::Refused => format!("refused at once: {}", preview.message),
        Decision::NoPolicy => format!("not approvable: {}{waiting}", preview.message),
        Decision::NeedsApproval => {
            let options = preview
                .policies
                .iter()
                .map(needs)
                .collect::<Vec<_>>()
                .join("; or ");
            format!("needs approval: {options}{waiting}")
        }
    };
    out.push(format!("Decision:   {decision}"));
    out.extend(preview.notes.iter().map(|note| format!("Note:       {note}")));
    out
}

/// Asks the apiserver to admit `object` without storing it, reads the namespace's policies, and
/// prints what the operator would decide.
pub async fn run(session: &Session, object: &AccessRequest, format: OutputFormat) -> Result<ExitCode> {
    let admitted = crate::cluster::access_request::create(session, object, true).await?;
    let policies = session
        .api::<AccessPolicy>()
        .list(&ListParams::default())
        .await
        .map_err(|err| session.failed::<AccessPolicy>("list", err))?
        .items;
    // The apiserver's dry run may leave the namespace and annotations as admission would: use them.
    let mut request = admitted;
    request.metadata.namespace = Some(session.namespace.clone());
    let shown = preview(&request, &policies, Timestamp::now())?;
    if !structured(format, &shown)? {
        for line in lines(&shown) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The workstation cannot see EC2 tags: a policy selecting only by tag is judged without them (the
/// operator, which can, may still find it covers the request).
fn no_tags() -> approval::InstanceTags {
    approval::InstanceTags::new()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use passport_crds::{
        AccessPolicySpec,
        access_policy::{ApprovalRule, AutoApproveRule, TargetSelector},
        common::annotations::REQUESTER_GROUPS,
    };

    use super::*;
    use crate::fixtures::{INSTANCE, OTHER_INSTANCE, access_request};

    fn now() -> Timestamp {
        "2026-03-02T12:00:00Z".parse().expect("timestamp")
    }

    fn subjects(users: &[&str], groups: &[&str]) -> Subjects {
        Subjects {
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    /// Lets developers reach INSTANCE for up to 4h, approved by one of carol, alice or sre.
    fn app_servers() -> AccessPolicy {
        let mut policy = AccessPolicy::new(
            "app-servers",
            AccessPolicySpec {
                requesters: subjects(&[], &["developers"]),
                targets: TargetSelector {
                    instance_ids: vec![INSTANCE.to_owned()],
                    ..TargetSelector::default()
                },
                max_duration: "4h".into(),
                approval: ApprovalRule {
                    required: 1,
                    approvers: subjects(&["carol", "alice"], &["sre"]),
                },
                auto_approve: Vec::new(),
                require_ticket: false,
                pending_timeout: "30m".into(),
                gitops_appliers: Subjects::default(),
                default_account: None,
            },
        );
        policy.metadata.namespace = Some("team-a".into());
        policy
    }

    fn alice_asks(duration: &str, instances: &[&str]) -> AccessRequest {
        let mut request = access_request(instances);
        request.metadata.namespace = Some("team-a".into());
        request.metadata.annotations = Some(BTreeMap::from([(
            REQUESTER_GROUPS.to_owned(),
            "developers".to_owned(),
        )]));
        request.spec.duration = duration.into();
        request
    }

    #[test]
    fn over_the_maximum_is_refused_naming_the_limit_and_the_policy() -> Result<()> {
        let shown = preview(&alice_asks("5h", &[INSTANCE]), &[app_servers()], now())?;
        assert_eq!(shown.decision, Decision::Refused);
        assert_eq!(shown.message, "at most 4h under AccessPolicy app-servers");
        assert!(shown.policies.is_empty());
        let text = lines(&shown).join("\n");
        assert!(
            text.contains("Policy:     none covers this request")
                && text.contains("Decision:   refused at once: at most 4h under AccessPolicy app-servers"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn a_covered_request_says_how_many_approvals_and_from_whom() -> Result<()> {
        let shown = preview(&alice_asks("90m", &[INSTANCE]), &[app_servers()], now())?;
        assert_eq!(shown.decision, Decision::NeedsApproval);
        assert_eq!(shown.duration, "1h30m");
        assert_eq!(shown.pending_timeout.as_deref(), Some("30m"));
        assert_eq!(shown.requester_groups, vec!["developers"]);
        let [applies] = shown.policies.as_slice() else {
            panic!("one policy applies: {:?}", shown.policies)
        };
        assert_eq!(
            applies.approvers,
            subjects(&["carol"], &["sre"]),
            "never alice herself"
        );
        assert_eq!(
            lines(&shown),
            vec![
                "Dry run: AccessRequest team-a/db was not created.",
                "Requester:  alice (groups developers), on i-0123456789abcdef0",
                "Policy:     app-servers (at most 4h)",
                "Duration:   1h30m, counted from activation",
                "Decision:   needs approval: 1 approval from user carol or members of group sre under \
                 AccessPolicy app-servers; it would wait up to 30m, then end Denied",
            ]
        );
        Ok(())
    }

    #[test]
    fn an_auto_approval_rule_says_which_policy_approves() -> Result<()> {
        let mut policy = app_servers();
        policy.spec.auto_approve = vec![AutoApproveRule {
            requesters: subjects(&["alice"], &[]),
            max_duration: Some("2h".into()),
        }];
        let shown = preview(&alice_asks("2h", &[INSTANCE]), slice::from_ref(&policy), now())?;
        assert_eq!(shown.decision, Decision::AutoApproved);
        assert_eq!(
            shown.message,
            "approved by auto-approval in AccessPolicy app-servers"
        );
        assert!(shown.policies.first().is_some_and(|a| a.auto_approves));
        // Past the rule's own maximum, it needs a reviewer again.
        let longer = preview(&alice_asks("3h", &[INSTANCE]), &[policy], now())?;
        assert_eq!(longer.decision, Decision::NeedsApproval);
        Ok(())
    }

    #[test]
    fn instances_outside_every_policy_are_refused_and_strangers_wait_for_a_policy() -> Result<()> {
        let outside = preview(
            &alice_asks("1h", &[INSTANCE, OTHER_INSTANCE]),
            &[app_servers()],
            now(),
        )?;
        assert_eq!(outside.decision, Decision::Refused);
        assert!(outside.message.contains(OTHER_INSTANCE), "{}", outside.message);
        let mut stranger = alice_asks("1h", &[INSTANCE]);
        stranger.metadata.annotations = None;
        let shown = preview(&stranger, &[app_servers()], now())?;
        assert_eq!(shown.decision, Decision::NoPolicy);
        assert_eq!(shown.pending_timeout.as_deref(), Some("1h"));
        assert!(
            lines(&shown).last().is_some_and(
                |l| l.starts_with("Decision:   not approvable: no AccessPolicy in namespace team-a")
            ),
            "{:?}",
            lines(&shown)
        );
        Ok(())
    }

    #[test]
    fn a_policy_selecting_by_tags_is_noted_not_judged() -> Result<()> {
        let mut tagged = app_servers();
        tagged.metadata.name = Some("tagged".into());
        tagged.spec.targets = TargetSelector {
            instance_ids: Vec::new(),
            tags: BTreeMap::from([("env".to_owned(), "staging".to_owned())]),
        };
        let shown = preview(&alice_asks("1h", &[INSTANCE]), &[tagged], now())?;
        assert_eq!(
            shown.notes,
            vec![format!(
                "AccessPolicy tagged selects instances by EC2 tags (env=staging), which only the operator \
                 reads: if {INSTANCE} carry them, it may cover this request"
            )]
        );
        assert!(
            lines(&shown)
                .last()
                .is_some_and(|l| l.starts_with("Note:       AccessPolicy tagged"))
        );
        let listed = preview(&alice_asks("1h", &[INSTANCE]), &[app_servers()], now())?;
        assert!(listed.notes.is_empty());
        Ok(())
    }

    #[test]
    fn the_json_form_names_its_fields_in_camel_case() -> Result<()> {
        let shown = preview(&alice_asks("5h", &[INSTANCE]), &[app_servers()], now())?;
        let json = serde_json::to_value(&shown)?;
        assert_eq!(json["dryRun"], true);
        assert_eq!(json["decision"], "Refused");
        assert_eq!(json["requesterGroups"][0], "developers");
        assert!(json.get("pendingTimeout").is_none());
        Ok(())
    }
}

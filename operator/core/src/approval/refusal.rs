//! Why no AccessPolicy covers a request, said at once and by name: which limit of which policy it
//! exceeds. A requester no policy lists at all is not refused here: the request waits (until its
//! pending timeout) for an administrator to write a policy.

use std::time::Duration;

use passport_crds::{AccessPolicy, AccessRequest};

use super::InstanceTags;

/// The refusal, when at least one policy lists the requester and none covers the request.
pub fn refusal(
    policies: &[AccessPolicy],
    request: &AccessRequest,
    requested: Duration,
    groups: &[String],
    tags: &InstanceTags,
) -> Option<String> {
    let reasons: Vec<String> = policies
        .iter()
        .filter(|p| p.spec.requesters.matches(&request.spec.requester, groups))
        .map(|p| why_not(p, request, requested, tags))
        .filter(|why| !why.is_empty())
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

fn why_not(
    policy: &AccessPolicy,
    request: &AccessRequest,
    requested: Duration,
    tags: &InstanceTags,
) -> String {
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let (p, r) = (&policy.spec, &request.spec);
    let mut problems = Vec::new();
    match p.max_access() {
        Ok(max) if requested > max => {
            problems.push(format!("at most {} under AccessPolicy {name}", p.max_duration));
        }
        Ok(_) => {}
        Err(err) => problems.push(format!("AccessPolicy {name} is invalid ({err})")),
    }
    let outside: Vec<&str> = r
        .targets
        .iter()
        .map(|t| t.instance_id.as_str())
        .filter(|id| !p.targets.selects(id, tags.get(*id)))
        .collect();
    if !outside.is_empty() {
        problems.push(format!(
            "AccessPolicy {name} does not allow {}",
            outside.join(", ")
        ));
    }
    if p.require_ticket && r.ticket.is_none() {
        problems.push(format!("AccessPolicy {name} requires a ticket (spec.ticket)"));
    }
    problems.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{policy, request};

    const HOUR: Duration = Duration::from_secs(3600);

    fn none() -> InstanceTags {
        InstanceTags::new()
    }

    fn alice_request() -> AccessRequest {
        request("req")
    }

    fn covering_alice() -> AccessPolicy {
        let mut p = policy("app-servers");
        p.spec.requesters.users = vec![alice_request().spec.requester];
        p.spec.targets.instance_ids = alice_request()
            .spec
            .targets
            .iter()
            .map(|t| t.instance_id.clone())
            .collect();
        p.spec.max_duration = "4h".into();
        p
    }

    #[test]
    fn over_the_maximum_names_the_limit_and_the_policy() {
        let why = refusal(&[covering_alice()], &alice_request(), 5 * HOUR, &[], &none()).expect("refused");
        assert_eq!(why, "at most 4h under AccessPolicy app-servers");
    }

    #[test]
    fn a_missing_ticket_is_named_only_where_required() {
        let mut p = covering_alice();
        assert_eq!(refusal(&[p.clone()], &alice_request(), HOUR, &[], &none()), None);
        p.spec.require_ticket = true;
        let why = refusal(&[p], &alice_request(), HOUR, &[], &none()).expect("refused");
        assert!(why.contains("requires a ticket (spec.ticket)"), "{why}");
    }

    #[test]
    fn untargeted_instances_are_named() {
        let mut p = covering_alice();
        p.spec.targets.instance_ids.clear();
        let why = refusal(&[p], &alice_request(), HOUR, &[], &none()).expect("refused");
        assert!(
            why.starts_with("AccessPolicy app-servers does not allow i-"),
            "{why}"
        );
    }

    #[test]
    fn a_requester_no_policy_lists_is_not_refused_but_waits() {
        let mut p = covering_alice();
        p.spec.requesters.users = vec!["bob".into()];
        assert_eq!(refusal(&[p], &alice_request(), 5 * HOUR, &[], &none()), None);
    }
}

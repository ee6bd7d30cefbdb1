//! `ssh-config --instance i-…`: which of your AccessRequests lets you reach one instance now, or
//! why none does, in one line. Pure: the requests come in as read.

use kube::ResourceExt;
use passport_crds::{AccessRequest, access_request::TargetState};

use crate::cluster::access_request::{instance_ids, is_windows, target_status};

/// Why `request`, which names `instance`, cannot reach it now (`None`: it can).
fn why_not(request: &AccessRequest, instance: &str) -> Option<String> {
    let name = request.name_any();
    if let Some(unusable) = request.unusable() {
        return Some(unusable.to_string());
    }
    if is_windows(request, instance) {
        return Some(format!(
            "{instance} is a Windows instance, which ssh does not reach; use kubectl passport connect {name} {instance}"
        ));
    }
    let target = target_status(request, instance);
    match target.map(|t| (&t.state, t.message.trim())) {
        Some((TargetState::Ready, _)) => None,
        Some((state, "")) => Some(format!("AccessRequest {name} has {instance} {state:?}")),
        Some((state, message)) => Some(format!(
            "AccessRequest {name} has {instance} {state:?}: {message}"
        )),
        None => Some(format!(
            "AccessRequest {name} reports nothing about {instance} yet"
        )),
    }
}

/// The request among `requests` (the user's own) that reaches `instance` now: the one lasting
/// longest. Else why not: no request names it, or each one's reason.
pub fn covering<'a>(
    requests: &'a [AccessRequest],
    instance: &str,
    namespace: &str,
) -> Result<&'a AccessRequest, String> {
    let naming: Vec<&AccessRequest> = requests
        .iter()
        .filter(|r| instance_ids(r).contains(&instance))
        .collect();
    if naming.is_empty() {
        return Err(format!(
            "no AccessRequest of yours in namespace {namespace} names {instance}; ask for one with kubectl passport request --instance {instance} --reason REASON --wait"
        ));
    }
    let expiry = |r: &AccessRequest| r.status.as_ref().and_then(|s| s.expires_at.clone()).map(|t| t.0);
    if let Some(usable) = naming
        .iter()
        .filter(|r| why_not(r, instance).is_none())
        .max_by_key(|r| expiry(r))
    {
        return Ok(usable);
    }
    let reasons: Vec<String> = naming.iter().filter_map(|r| why_not(r, instance)).collect();
    Err(format!(
        "{instance} cannot be reached now: {}",
        reasons.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use passport_crds::{
        Phase,
        access_request::{Platform, TargetStatus},
        common::Time,
    };

    use super::*;
    use crate::fixtures::{INSTANCE, OTHER_INSTANCE, in_phase};

    fn active(name: &str, state: TargetState, expires: &str) -> AccessRequest {
        let mut request = in_phase(&[INSTANCE], Phase::Active, "");
        request.metadata.name = Some(name.into());
        let status = request.status.as_mut().expect("status");
        status.expires_at = Some(Time(expires.parse().expect("timestamp")));
        status.targets = vec![TargetStatus {
            instance_id: INSTANCE.into(),
            state,
            ..TargetStatus::default()
        }];
        request
    }

    #[test]
    fn the_ready_request_lasting_longest_is_chosen() {
        let requests = [
            active("short", TargetState::Ready, "2026-11-29T16:00:00Z"),
            active("long", TargetState::Ready, "2026-11-29T18:00:00Z"),
            active("broken", TargetState::Failed, "2026-11-29T19:00:00Z"),
        ];
        let chosen = covering(&requests, INSTANCE, "team-a").map(ResourceExt::name_any);
        assert_eq!(chosen.as_deref(), Ok("long"));
    }

    #[test]
    fn an_instance_no_request_names_says_how_to_ask() {
        let requests = [active("db", TargetState::Ready, "2026-11-29T16:00:00Z")];
        let err = covering(&requests, OTHER_INSTANCE, "team-a").expect_err("not named");
        assert_eq!(
            err,
            format!(
                "no AccessRequest of yours in namespace team-a names {OTHER_INSTANCE}; ask for one with kubectl passport request --instance {OTHER_INSTANCE} --reason REASON --wait"
            )
        );
    }

    #[test]
    fn each_request_naming_the_instance_says_why_it_cannot_reach_it() {
        let mut pending = in_phase(&[INSTANCE], Phase::Pending, "");
        pending.metadata.name = Some("waiting".into());
        let mut failed = active("broken", TargetState::Failed, "2026-11-29T19:00:00Z");
        failed.status.as_mut().expect("status").targets[0].message = "SSM agent offline".into();
        let mut windows = active("rdp", TargetState::Ready, "2026-11-29T19:00:00Z");
        windows.status.as_mut().expect("status").targets[0].platform = Some(Platform::Windows);
        let err = covering(&[pending, failed, windows], INSTANCE, "team-a").expect_err("none usable");
        assert!(
            err.starts_with(&format!(
                "{INSTANCE} cannot be reached now: AccessRequest waiting is Pending"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "; AccessRequest broken has {INSTANCE} Failed: SSM agent offline"
            )),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("use kubectl passport connect rdp {INSTANCE}")),
            "{err}"
        );
    }
}

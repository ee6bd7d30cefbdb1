//! Who else holds a requester's OS user: every request of one requester shares one username, so
//! revoking on an instance where another live request of theirs still grants it would cut that
//! request off.

use std::collections::BTreeMap;

use jiff::Timestamp;
use passport_crds::{AccessRequest, Phase, access_request::TargetState};

/// Whether `other` still grants its user at `now`: not being deleted or completed, provisioning or
/// active, and not past its `expiresAt`.
pub fn is_live(other: &AccessRequest, now: Timestamp) -> bool {
    other.metadata.deletion_timestamp.is_none()
        && !other.spec.completed
        && other.status.as_ref().is_some_and(|s| {
            matches!(s.phase, Phase::Provisioning | Phase::Active)
                && s.expires_at.as_ref().is_none_or(|t| t.0 > now)
        })
}

/// Instances where another live request of the same requester has the user (provisioned or being
/// provisioned), each with that request's `namespace/name`. `others` may include `request` itself
/// and requests of other requesters; they are skipped.
pub fn still_granted_elsewhere<'a>(
    request: &AccessRequest,
    others: impl IntoIterator<Item = &'a AccessRequest>,
    now: Timestamp,
) -> BTreeMap<String, String> {
    let mut granted = BTreeMap::new();
    let same_user = |other: &&AccessRequest| {
        other.metadata.uid != request.metadata.uid && other.spec.requester == request.spec.requester
    };
    for other in others.into_iter().filter(same_user).filter(|o| is_live(o, now)) {
        let key = format!(
            "{}/{}",
            other.metadata.namespace.as_deref().unwrap_or_default(),
            other.metadata.name.as_deref().unwrap_or_default()
        );
        let targets = other.status.iter().flat_map(|s| &s.targets);
        for target in targets.filter(|t| matches!(t.state, TargetState::Ready | TargetState::Provisioning)) {
            granted
                .entry(target.instance_id.clone())
                .or_insert_with(|| key.clone());
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use passport_crds::{AccessRequestStatus, access_request::TargetStatus, common::Time};

    use super::*;
    use crate::fixtures::{TARGET, at, request};

    fn holding(name: &str, phase: Phase, state: TargetState, expires: i64) -> AccessRequest {
        let mut r = request(name);
        r.status = Some(AccessRequestStatus {
            phase,
            expires_at: Some(Time(at(expires))),
            targets: vec![TargetStatus {
                instance_id: TARGET.into(),
                state,
                ..TargetStatus::default()
            }],
            ..AccessRequestStatus::default()
        });
        r
    }

    #[test]
    fn another_live_request_of_the_requester_keeps_the_user() {
        let me = request("me");
        let other = holding("other", Phase::Active, TargetState::Ready, 100);
        let granted = still_granted_elsewhere(&me, [&me, &other], at(50));
        assert_eq!(granted.get(TARGET).map(String::as_str), Some("team-a/other"));
    }

    #[test]
    fn ended_expired_deleted_or_foreign_requests_keep_nothing() {
        let me = request("me");
        let expired = holding("expired", Phase::Active, TargetState::Ready, 10);
        let revoking = holding("revoking", Phase::Revoking, TargetState::Ready, 100);
        let mut completed = holding("completed", Phase::Active, TargetState::Ready, 100);
        completed.spec.completed = true;
        let mut deleted = holding("deleted", Phase::Active, TargetState::Ready, 100);
        deleted.metadata.deletion_timestamp = Some(Time(at(20)));
        let mut bobs = holding("bobs", Phase::Active, TargetState::Ready, 100);
        bobs.spec.requester = "bob".into();
        let removing = holding("removing", Phase::Active, TargetState::Removing, 100);
        let others = [&expired, &revoking, &completed, &deleted, &bobs, &removing];
        assert!(still_granted_elsewhere(&me, others, at(50)).is_empty());
    }
}

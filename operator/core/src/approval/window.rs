//! Whether a request needs approving as its spec stands, and which reviews count for it.

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::{AccessRequest, Phase};

/// `Some(since)` when the request needs approving (it is new, or its duration grew past what was
/// approved): only reviews made since then count. `None` when nothing waits for approval.
///
/// `requested` is `spec.duration`, `approved` is `status.approvedDuration`, both parsed.
pub fn reviews_since(
    request: &AccessRequest,
    requested: Duration,
    approved: Option<Duration>,
) -> Option<Timestamp> {
    let created = request
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let status = request.status.as_ref();
    match request.phase() {
        Phase::Pending => Some(created),
        Phase::Provisioning | Phase::Active => {
            let extending = approved.is_some_and(|approved| approved < requested);
            let last_approval = status
                .and_then(|s| s.extended_at.as_ref().or(s.approved_at.as_ref()))
                .map_or(created, |t| t.0);
            extending.then_some(last_approval)
        }
        Phase::Revoking | Phase::Completed | Phase::Expired | Phase::Denied | Phase::Failed => None,
    }
}

#[cfg(test)]
mod tests {
    use passport_crds::{AccessRequestStatus, common::Time};

    use super::*;
    use crate::fixtures::{at, request};

    const HOUR: Duration = Duration::from_secs(3600);

    fn in_phase(phase: Phase) -> AccessRequest {
        let mut r = request("r");
        r.status = Some(AccessRequestStatus {
            phase,
            approved_at: Some(Time(at(10))),
            ..AccessRequestStatus::default()
        });
        r
    }

    #[test]
    fn a_new_request_counts_reviews_since_its_creation() {
        assert_eq!(reviews_since(&request("r"), HOUR, None), Some(at(0)));
    }

    #[test]
    fn an_approved_request_needs_nothing_until_it_grows() {
        let active = in_phase(Phase::Active);
        assert_eq!(reviews_since(&active, HOUR, Some(HOUR)), None);
        assert_eq!(reviews_since(&active, 2 * HOUR, Some(HOUR)), Some(at(10)));
    }

    #[test]
    fn an_extension_counts_reviews_since_the_last_extension() {
        let mut active = in_phase(Phase::Provisioning);
        active.status.as_mut().expect("status").extended_at = Some(Time(at(20)));
        assert_eq!(reviews_since(&active, 3 * HOUR, Some(2 * HOUR)), Some(at(20)));
    }

    #[test]
    fn ending_requests_wait_for_no_approval() {
        for phase in [
            Phase::Revoking,
            Phase::Completed,
            Phase::Expired,
            Phase::Denied,
            Phase::Failed,
        ] {
            assert_eq!(
                reviews_since(&in_phase(phase), 2 * HOUR, Some(HOUR)),
                None,
                "{phase:?}"
            );
        }
    }
}

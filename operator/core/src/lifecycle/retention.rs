//! How long a finished AccessRequest stays: long enough to read it and its Logbook record (which the
//! audit sink holds for good), then it is deleted, so the cluster's work never grows with history.

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::AccessRequestStatus;

use crate::time::{add, elapsed};

/// The default of the operator's `--finished-retention`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What to do with a request in this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Not finished: the lifecycle decides.
    Live,
    /// Finished; delete it after this long.
    KeepFor(Duration),
    /// Finished longer ago than the retention: delete it now (the finalizer still waits for its
    /// Logbook record to reach the sink).
    Delete,
}

/// Whether and when a finished request goes. A finished request without `endedAt` (written by an
/// older operator) counts from now, as if it had just ended.
pub fn retention(status: &AccessRequestStatus, keep: Duration, now: Timestamp) -> Retention {
    if !status.phase.is_terminal() {
        return Retention::Live;
    }
    let ended = status.ended_at.as_ref().map_or(now, |t| t.0);
    let until = add(ended, keep);
    if until <= now {
        Retention::Delete
    } else {
        Retention::KeepFor(elapsed(now, until))
    }
}

#[cfg(test)]
mod tests {
    use passport_crds::{Phase, common::Time};

    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_900_000_000 + second).expect("time")
    }

    fn status(phase: Phase, ended: Option<i64>) -> AccessRequestStatus {
        AccessRequestStatus {
            phase,
            ended_at: ended.map(|s| Time(at(s))),
            ..AccessRequestStatus::default()
        }
    }

    #[test]
    fn live_requests_are_not_the_retentions_business() {
        for phase in [
            Phase::Pending,
            Phase::Provisioning,
            Phase::Active,
            Phase::Revoking,
        ] {
            assert_eq!(
                retention(&status(phase, None), DEFAULT_RETENTION, at(0)),
                Retention::Live
            );
        }
    }

    #[test]
    fn a_finished_request_stays_for_the_retention_then_goes() {
        let keep = Duration::from_secs(3600);
        for phase in [Phase::Completed, Phase::Expired, Phase::Denied, Phase::Failed] {
            let finished = status(phase, Some(0));
            assert_eq!(
                retention(&finished, keep, at(600)),
                Retention::KeepFor(Duration::from_secs(3000))
            );
            assert_eq!(retention(&finished, keep, at(3600)), Retention::Delete);
            assert_eq!(retention(&finished, keep, at(99_999)), Retention::Delete);
        }
    }

    #[test]
    fn without_ended_at_the_retention_counts_from_now() {
        let keep = Duration::from_secs(60);
        assert_eq!(
            retention(&status(Phase::Completed, None), keep, at(5)),
            Retention::KeepFor(keep)
        );
    }
}

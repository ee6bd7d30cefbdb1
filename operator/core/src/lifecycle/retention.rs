//! How long a finished AccessRequest stays: long enough to read it and its Logbook record (which the
//! audit sink holds for good), then it is deleted, so the cluster's work never grows with history.
//!
//! Two kinds of finished request stay for good:
//! * when no sink takes the Logbook out of the cluster, the request holds the only record;
//! * a request a GitOps tool applied (annotation `passport.dev/applied-by`): deleted, it would be
//!   applied again from Git by the tool's next sync, and approved again by the same merge, so one
//!   merge would become a standing grant. Remove it from Git; the tool prunes it.

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::AccessRequestStatus;

use crate::time::{add, elapsed};

/// The default of the operator's `--finished-retention`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the operator's configuration says of finished requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// `--finished-retention`.
    pub keep: Duration,
    /// Whether a Logbook sink (HTTP or stdout) takes the records out of the cluster.
    pub records_exported: bool,
}

/// What to do with a request in this state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Not finished: the lifecycle decides.
    Live,
    /// Finished, and kept for good (see the module's documentation).
    Kept,
    /// Finished; delete it after this long.
    KeepFor(Duration),
    /// Finished longer ago than the retention: delete it now (the finalizer still waits for its
    /// Logbook record to reach the sink).
    Delete,
}

/// Whether and when a finished request goes. `from_git`: a GitOps tool applied it. A finished request
/// without `endedAt` (written by an older operator) counts from its last Logbook entry, else from now.
pub fn retention(
    status: &AccessRequestStatus,
    from_git: bool,
    policy: RetentionPolicy,
    now: Timestamp,
) -> Retention {
    if !status.phase.is_terminal() {
        return Retention::Live;
    }
    if from_git || !policy.records_exported {
        return Retention::Kept;
    }
    let last_entry = || status.logbook.as_ref()?.entries.last().map(|e| e.time.0);
    let ended = status
        .ended_at
        .as_ref()
        .map(|t| t.0)
        .or_else(last_entry)
        .unwrap_or(now);
    let until = add(ended, policy.keep);
    if until <= now {
        Retention::Delete
    } else {
        Retention::KeepFor(elapsed(now, until))
    }
}

#[cfg(test)]
mod tests {
    use passport_crds::{
        Phase,
        common::Time,
        logbook::{LogbookEntry, LogbookRecord},
    };

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

    fn exported(keep: Duration) -> RetentionPolicy {
        RetentionPolicy {
            keep,
            records_exported: true,
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
            let status = status(phase, None);
            let decided = retention(&status, false, exported(DEFAULT_RETENTION), at(0));
            assert_eq!(decided, Retention::Live);
        }
    }

    #[test]
    fn requests_from_git_and_records_kept_nowhere_else_stay() {
        let finished = status(Phase::Completed, Some(0));
        let keep = Duration::from_secs(60);
        assert_eq!(
            retention(&finished, true, exported(keep), at(999)),
            Retention::Kept
        );
        let unexported = RetentionPolicy {
            keep,
            records_exported: false,
        };
        assert_eq!(retention(&finished, false, unexported, at(999)), Retention::Kept);
    }

    #[test]
    fn a_finished_request_stays_for_the_retention_then_goes() {
        let keep = Duration::from_secs(3600);
        for phase in [Phase::Completed, Phase::Expired, Phase::Denied, Phase::Failed] {
            let finished = status(phase, Some(0));
            let policy = exported(keep);
            assert_eq!(
                retention(&finished, false, policy, at(600)),
                Retention::KeepFor(Duration::from_secs(3000))
            );
            assert_eq!(retention(&finished, false, policy, at(3600)), Retention::Delete);
            assert_eq!(retention(&finished, false, policy, at(99_999)), Retention::Delete);
        }
    }

    #[test]
    fn without_ended_at_the_retention_counts_from_the_last_entry_else_from_now() {
        let keep = Duration::from_secs(60);
        let mut legacy = status(Phase::Completed, None);
        assert_eq!(
            retention(&legacy, false, exported(keep), at(5)),
            Retention::KeepFor(keep)
        );
        legacy.logbook = Some(LogbookRecord {
            entries: vec![LogbookEntry {
                seq: 1,
                time: Time(at(0)),
                action: "completed".into(),
                actor: "alice".into(),
                message: "done".into(),
                warning: false,
            }],
            ..LogbookRecord::default()
        });
        assert_eq!(
            retention(&legacy, false, exported(keep), at(60)),
            Retention::Delete
        );
    }
}

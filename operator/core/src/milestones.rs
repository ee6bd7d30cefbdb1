//! What a status change means for the operator's metrics: how long approval took, how long from
//! creation to access, how late after `expiresAt` revocation started, how long revocation took, and
//! how long each SSM command ran. Pure: it compares the status before and after a write.

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::{
    AccessRequestStatus, Phase,
    access_request::{TargetState, TargetStatus},
};

use crate::{
    lifecycle::{COMMAND_LIFETIME, Purpose},
    time::elapsed,
};

/// One thing worth timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Milestone {
    /// Created → approved.
    ApprovalWait(Duration),
    /// Created → Active (every target ready).
    GrantLatency(Duration),
    /// `expiresAt` → revocation started.
    ExpiryLag(Duration),
    /// Revocation started → every target clean.
    Revocation(Duration),
    /// An SSM command reached its outcome on one target: its purpose, whether it succeeded, and how
    /// long it ran from its send.
    Command {
        purpose: Purpose,
        succeeded: bool,
        took: Duration,
    },
}

/// The milestones passed from `before` to `after`, for a request created at `created`.
pub fn passed(
    before: &AccessRequestStatus,
    after: &AccessRequestStatus,
    created: Timestamp,
    now: Timestamp,
) -> Vec<Milestone> {
    let mut passed = Vec::new();
    if before.approved_at.is_none()
        && let Some(approved) = &after.approved_at
    {
        passed.push(Milestone::ApprovalWait(elapsed(created, approved.0)));
    }
    if before.activated_at.is_none()
        && let Some(activated) = &after.activated_at
    {
        passed.push(Milestone::GrantLatency(elapsed(created, activated.0)));
    }
    if before.revocation_started_at.is_none()
        && let Some(started) = &after.revocation_started_at
        && after.outcome == Some(Phase::Expired)
        && let Some(expires) = &after.expires_at
    {
        passed.push(Milestone::ExpiryLag(elapsed(expires.0, started.0)));
    }
    if !before.phase.is_terminal()
        && after.phase.is_terminal()
        && let Some(started) = &after.revocation_started_at
    {
        passed.push(Milestone::Revocation(elapsed(started.0, now)));
    }
    for old in &before.targets {
        let Some(new) = after.targets.iter().find(|t| t.instance_id == old.instance_id) else {
            continue;
        };
        if let Some(command) = finished(old, new, now) {
            passed.push(command);
        }
    }
    passed
}

/// A target whose command (recorded with its deadline, `retryAt` = send + [`COMMAND_LIFETIME`])
/// reached an outcome in this change.
fn finished(old: &TargetStatus, new: &TargetStatus, now: Timestamp) -> Option<Milestone> {
    let purpose = match (old.state, new.state) {
        (TargetState::Provisioning, TargetState::Ready) => (Purpose::Provision, true),
        (TargetState::Provisioning, TargetState::Failed) => (Purpose::Provision, false),
        (TargetState::Removing, TargetState::Removed) => (Purpose::Revoke, true),
        (TargetState::Removing, _) if new.revoke_failures > old.revoke_failures => (Purpose::Revoke, false),
        _ => return None,
    };
    let deadline = old.retry_at.as_ref()?.0;
    old.command_id.as_ref()?;
    let sent = deadline.checked_sub(COMMAND_LIFETIME).ok()?;
    Some(Milestone::Command {
        purpose: purpose.0,
        succeeded: purpose.1,
        took: elapsed(sent, now),
    })
}

#[cfg(test)]
mod tests {
    use passport_crds::common::Time;

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid")
    }

    #[test]
    fn approval_and_activation_are_timed_from_creation() {
        let before = AccessRequestStatus::default();
        let after = AccessRequestStatus {
            approved_at: Some(Time(at(2))),
            activated_at: Some(Time(at(5))),
            ..AccessRequestStatus::default()
        };
        assert_eq!(
            passed(&before, &after, at(0), at(5)),
            [
                Milestone::ApprovalWait(Duration::from_secs(2)),
                Milestone::GrantLatency(Duration::from_secs(5))
            ]
        );
        assert!(passed(&after, &after, at(0), at(9)).is_empty(), "each once");
    }

    #[test]
    fn expiry_lag_and_revocation_are_timed() {
        let active = AccessRequestStatus {
            phase: Phase::Active,
            expires_at: Some(Time(at(100))),
            ..AccessRequestStatus::default()
        };
        let revoking = AccessRequestStatus {
            phase: Phase::Revoking,
            outcome: Some(Phase::Expired),
            revocation_started_at: Some(Time(at(101))),
            ..active.clone()
        };
        assert_eq!(
            passed(&active, &revoking, at(0), at(101)),
            [Milestone::ExpiryLag(Duration::from_secs(1))]
        );
        let expired = AccessRequestStatus {
            phase: Phase::Expired,
            ..revoking.clone()
        };
        assert_eq!(
            passed(&revoking, &expired, at(0), at(104)),
            [Milestone::Revocation(Duration::from_secs(3))]
        );
    }

    #[test]
    fn a_command_is_timed_from_its_send_to_its_outcome() {
        let sent = at(10);
        let running = TargetStatus {
            instance_id: "i-1".into(),
            state: TargetState::Provisioning,
            command_id: Some("cmd".into()),
            retry_at: Some(Time(sent + COMMAND_LIFETIME)),
            ..TargetStatus::default()
        };
        let ready = TargetStatus {
            state: TargetState::Ready,
            ..running.clone()
        };
        let before = AccessRequestStatus {
            targets: vec![running],
            ..AccessRequestStatus::default()
        };
        let after = AccessRequestStatus {
            targets: vec![ready],
            ..AccessRequestStatus::default()
        };
        assert_eq!(
            passed(&before, &after, at(0), at(13)),
            [Milestone::Command {
                purpose: Purpose::Provision,
                succeeded: true,
                took: Duration::from_secs(3)
            }]
        );
    }
}

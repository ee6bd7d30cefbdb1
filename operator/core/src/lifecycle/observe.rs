//! What the controller must ask AWS before the next step: which targets' platforms (are they
//! managed by SSM?) and which commands in flight.

use passport_crds::{
    AccessRequestSpec, AccessRequestStatus, Phase,
    access_request::{TargetState, TargetStatus},
};

use crate::approval::Approval;

/// The questions for AWS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Instances whose platform (and whether SSM manages them) is not known yet.
    pub platforms: Vec<String>,
    /// Every command still acting on a target.
    pub invocations: Vec<Follow>,
    /// Instances whose last provisioning send has no known outcome: did SSM take it?
    pub lost_sends: Vec<String>,
    /// EC2 instances whose revocation failed: are they still there at all?
    pub existence: Vec<String>,
}

/// A command to follow on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    pub instance_id: String,
    pub command_id: String,
    /// Whether the lifecycle reads what the command printed (a provisioning command's host keys and
    /// sealed password), not only how it ended (a revoke): then its whole output is fetched.
    pub output: bool,
}

/// Whether this step will start provisioning: the request is Pending, approved, and neither being
/// deleted nor completed. Then every target's platform is needed.
pub fn about_to_provision(
    status: &AccessRequestStatus,
    approval: &Approval,
    deleting: bool,
    spec: &AccessRequestSpec,
) -> bool {
    status.phase == Phase::Pending
        && matches!(approval, Approval::Approved { .. })
        && !deleting
        && !spec.completed
}

/// What to observe for the next step.
pub fn wanted(spec: &AccessRequestSpec, status: &AccessRequestStatus, about_to_provision: bool) -> Wanted {
    let platforms = if about_to_provision {
        spec.targets.iter().map(|t| t.instance_id.clone()).collect()
    } else if status.phase == Phase::Provisioning {
        status
            .targets
            .iter()
            .filter(|t| t.state == TargetState::Pending && t.platform.is_none())
            .map(|t| t.instance_id.clone())
            .collect()
    } else {
        Vec::new()
    };
    let invocations = status
        .targets
        .iter()
        .filter(|t| matches!(t.state, TargetState::Provisioning | TargetState::Removing))
        .filter_map(|t| {
            Some(Follow {
                instance_id: t.instance_id.clone(),
                command_id: t.command_id.clone()?,
                output: t.state == TargetState::Provisioning,
            })
        })
        .collect();
    let lost_sends = status
        .targets
        .iter()
        .filter(|t| lost_send(t))
        .map(|t| t.instance_id.clone())
        .collect();
    let existence = status
        .targets
        .iter()
        .filter(|t| t.state != TargetState::Removed && t.revoke_failures > 0)
        .filter(|t| is_ec2_instance(&t.instance_id))
        .map(|t| t.instance_id.clone())
        .collect();
    Wanted {
        platforms,
        invocations,
        lost_sends,
        existence,
    }
}

/// A provisioning send was recorded as intended but its answer never arrived (a crash, a lost
/// connection): SSM may or may not hold the command.
pub fn lost_send(target: &TargetStatus) -> bool {
    target.unconfirmed_since.is_some()
        && target.command_id.is_none()
        && matches!(target.state, TargetState::Pending | TargetState::Provisioning)
}

/// EC2 instance ids start with `i-`; SSM also manages hybrid machines (`mi-…`) that EC2 never knows.
fn is_ec2_instance(id: &str) -> bool {
    id.starts_with("i-")
}

#[cfg(test)]
mod tests {
    use passport_crds::{
        AccessRequestSpec,
        access_request::{Platform, TargetStatus},
    };

    use super::*;

    const A: &str = "i-0000000000000000a";
    const B: &str = "i-0000000000000000b";

    fn target(
        id: &str,
        state: TargetState,
        platform: Option<Platform>,
        command: Option<&str>,
    ) -> TargetStatus {
        TargetStatus {
            instance_id: id.into(),
            platform,
            state,
            command_id: command.map(str::to_owned),
            ..TargetStatus::default()
        }
    }

    fn status(phase: Phase, targets: Vec<TargetStatus>) -> AccessRequestStatus {
        AccessRequestStatus {
            phase,
            targets,
            ..AccessRequestStatus::default()
        }
    }

    #[test]
    fn provisioning_starts_only_for_an_approved_live_pending_request() {
        let spec = AccessRequestSpec::new("alice", "why", [A]);
        let approved = Approval::Approved { by: "policy".into() };
        let pending = status(Phase::Pending, vec![]);
        assert!(about_to_provision(&pending, &approved, false, &spec));
        assert!(!about_to_provision(&pending, &approved, true, &spec));
        let completed = AccessRequestSpec {
            completed: true,
            ..spec.clone()
        };
        assert!(!about_to_provision(&pending, &approved, false, &completed));
        let active = status(Phase::Active, vec![]);
        assert!(!about_to_provision(&active, &approved, false, &spec));
    }

    #[test]
    fn every_target_platform_is_wanted_before_provisioning() {
        let spec = AccessRequestSpec::new("alice", "why", [A, B]);
        let wanted = wanted(&spec, &status(Phase::Pending, vec![]), true);
        assert_eq!(wanted.platforms, [A, B]);
        assert!(wanted.invocations.is_empty());
    }

    #[test]
    fn while_provisioning_unknown_platforms_and_commands_in_flight_are_wanted() {
        let spec = AccessRequestSpec::new("alice", "why", [A, B]);
        let targets = vec![
            target(A, TargetState::Pending, None, None),
            target(B, TargetState::Provisioning, Some(Platform::Linux), Some("cmd-b")),
        ];
        let wanted = wanted(&spec, &status(Phase::Provisioning, targets), false);
        assert_eq!(wanted.platforms, [A]);
        let follow = Follow {
            instance_id: B.to_owned(),
            command_id: "cmd-b".to_owned(),
            output: true,
        };
        assert_eq!(wanted.invocations, [follow]);
    }

    #[test]
    fn revocations_in_flight_are_followed_and_nothing_else() {
        let spec = AccessRequestSpec::new("alice", "why", [A, B]);
        let targets = vec![
            target(A, TargetState::Removing, Some(Platform::Linux), Some("cmd-a")),
            target(B, TargetState::Removing, Some(Platform::Linux), None),
        ];
        let wanted = wanted(&spec, &status(Phase::Revoking, targets), false);
        assert!(wanted.platforms.is_empty());
        let follow = Follow {
            instance_id: A.to_owned(),
            command_id: "cmd-a".to_owned(),
            output: false,
        };
        assert_eq!(wanted.invocations, [follow], "a revoke's outcome, not its output");
        assert!(wanted.existence.is_empty());
    }

    #[test]
    fn a_send_without_an_answer_is_looked_up() {
        let spec = AccessRequestSpec::new("alice", "why", [A, B]);
        let lost = TargetStatus {
            unconfirmed_since: Some(passport_crds::common::Time(jiff::Timestamp::UNIX_EPOCH)),
            attempts: 1,
            ..target(A, TargetState::Pending, Some(Platform::Linux), None)
        };
        let answered = TargetStatus {
            unconfirmed_since: lost.unconfirmed_since.clone(),
            ..target(B, TargetState::Provisioning, Some(Platform::Linux), Some("cmd-b"))
        };
        let wanted = wanted(&spec, &status(Phase::Provisioning, vec![lost, answered]), false);
        assert_eq!(wanted.lost_sends, [A]);
    }

    #[test]
    fn ec2_is_asked_about_instances_whose_revocation_failed() {
        let spec = AccessRequestSpec::new("alice", "why", [A, B, "mi-0000000000000000c"]);
        let failing = |id: &str| TargetStatus {
            revoke_failures: 1,
            ..target(id, TargetState::Removing, Some(Platform::Linux), None)
        };
        let removed = TargetStatus {
            state: TargetState::Removed,
            ..failing(B)
        };
        let targets = vec![failing(A), removed, failing("mi-0000000000000000c")];
        let wanted = wanted(&spec, &status(Phase::Revoking, targets), false);
        assert_eq!(wanted.existence, [A]);
    }
}

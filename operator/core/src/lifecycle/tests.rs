//! Every phase transition of the contract, without a server.

use std::time::Duration;

use jiff::Timestamp;
use passport_crds::{
    AccessRequestSpec, Phase,
    access_request::{AccessRequestStatus, AccountRole, Platform, TargetState},
    common::Time,
    conditions::types as condition_types,
};

use super::*;
use crate::{
    account::AccountProblem,
    approval::{Approval, WaitReason},
    logbook::LogAction,
};

const A: &str = "i-0000000000000000a";
const B: &str = "i-0000000000000000b";

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid timestamp")
}

fn spec(targets: &[&str]) -> AccessRequestSpec {
    AccessRequestSpec {
        account: Some("prod".into()),
        ..AccessRequestSpec::new("alice", "disk full", targets.iter().copied())
    }
}

/// A scenario: mutate its fields, then `run` one step.
struct World {
    spec: AccessRequestSpec,
    status: AccessRequestStatus,
    deleting: bool,
    approval: Approval,
    account: AccountAccess,
    observations: Observations,
    audit_hold: Option<String>,
    now: Timestamp,
}

impl World {
    fn new(targets: &[&str]) -> Self {
        Self {
            spec: spec(targets),
            status: AccessRequestStatus::default(),
            deleting: false,
            approval: Approval::Approved {
                by: "policy team-a/ops".into(),
            },
            account: AccountAccess::Usable {
                name: "prod".into(),
                role: role(),
            },
            observations: Observations::default(),
            audit_hold: None,
            now: at(0),
        }
    }

    fn run(&mut self) -> Transition {
        let decision = step(Inputs {
            spec: &self.spec,
            status: &self.status,
            generation: Some(1),
            deleting: self.deleting,
            requested: self.spec.access_duration().expect("valid spec.duration"),
            approved: self
                .status
                .approved_access()
                .expect("valid status.approvedDuration"),
            approval: &self.approval,
            account: &self.account,
            observations: &self.observations,
            username: "rs-1234abcd",
            audit_hold: self.audit_hold.as_deref(),
            now: self.now,
        });
        self.status = decision.status.clone();
        self.observations = Observations::default();
        decision
    }

    fn managed(&mut self, id: &str, platform: Option<Platform>) -> &mut Self {
        self.observations.managed.insert(id.into(), platform);
        self
    }

    /// The command on `id` succeeded with no output.
    fn succeeded(&mut self, id: &str) -> &mut Self {
        self.invocation(
            id,
            Invocation::Succeeded {
                stdout: String::new(),
            },
        )
    }

    fn invocation(&mut self, id: &str, invocation: Invocation) -> &mut Self {
        self.observations.invocations.insert(id.into(), invocation);
        self
    }

    /// Feeds back a successful send of every action, as the controller would.
    fn sent(&mut self, decision: &Transition) {
        for (i, command) in decision.commands.iter().enumerate() {
            let outcome = CommandOutcome::Sent {
                command: command.clone(),
                command_id: format!("cmd-{i}"),
            };
            apply_outcome(&mut self.status, &outcome, self.now);
        }
    }

    fn target(&self, id: &str) -> &passport_crds::access_request::TargetStatus {
        self.status
            .targets
            .iter()
            .find(|t| t.instance_id == id)
            .expect("target exists")
    }

    /// Brings the request to Active at `at(10)` on all targets (Linux).
    fn activate(&mut self) {
        self.activate_as(Platform::Linux);
    }

    /// Brings the request to Active at `at(10)` on all targets, of `platform`.
    fn activate_as(&mut self, platform: Platform) {
        let ids: Vec<String> = self.spec.targets.iter().map(|t| t.instance_id.clone()).collect();
        self.run();
        for id in &ids {
            self.managed(id, Some(platform));
        }
        let d = self.run();
        self.sent(&d);
        self.now = at(10) + jiff::SignedDuration::from_millis(600);
        for id in &ids {
            self.invocation(
                id,
                Invocation::Succeeded {
                    stdout: host_keys_stdout(),
                },
            );
        }
        self.run();
        assert_eq!(self.status.phase, Phase::Active);
    }
}

fn host_keys_stdout() -> String {
    "--- passport host keys ---\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpQPuNnmCK/7T3fTS5vZA8z7rYawvf4GLIMXhUdpICQ root@host\n--- end host keys ---\n".into()
}

fn actions_of(d: &Transition) -> Vec<(&'static str, Vec<String>)> {
    d.commands
        .iter()
        .map(|c| (c.purpose.as_str(), c.instance_ids.clone()))
        .collect()
}

/// The logbook actions of a step, leaving out the Created entry every first step writes.
fn logged(d: &Transition) -> Vec<LogAction> {
    d.events
        .iter()
        .map(|e| e.action)
        .filter(|a| *a != LogAction::Created)
        .collect()
}

fn condition(status: &AccessRequestStatus, type_: &str) -> (String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present");
    (c.status.clone(), c.reason.clone())
}

mod provisioning;
mod revocation;
mod windows_expiry;

#[test]
fn pending_waits_for_approval_until_the_deadline() {
    let mut w = World::new(&[A]);
    w.approval = Approval::Waiting {
        reason: WaitReason::NoPolicy,
        message: "no AccessPolicy in team-a auto-approves alice".into(),
        deadline: at(3600),
    };
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Pending);
    assert!(d.commands.is_empty());
    assert_eq!(d.requeue_after, Some(Duration::from_secs(3600)));
    assert_eq!(
        condition(&w.status, condition_types::APPROVED),
        ("False".into(), "NoPolicy".into())
    );
    assert_eq!(w.status.username.as_deref(), Some("rs-1234abcd"));

    w.now = at(3600);
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Denied);
    assert_eq!(logged(&d), [LogAction::Denied]);
    assert!(d.release && w.status.ended_at.is_some());
}

#[test]
fn denial_ends_the_request() {
    let mut w = World::new(&[A]);
    w.approval = Approval::Denied {
        by: "carol".into(),
        message: "use the runbook".into(),
    };
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Denied);
    assert_eq!(d.events[0].action, LogAction::Created);
    assert!(
        d.events[0]
            .message
            .contains("alice requested 1 target(s) for 1h: disk full")
    );
    assert!(d.events[1].message.contains("carol") && d.events[1].warning);
}

#[test]
fn completing_or_deleting_a_pending_request_grants_nothing() {
    for deleting in [false, true] {
        let mut w = World::new(&[A]);
        w.approval = Approval::Waiting {
            reason: WaitReason::AwaitingApproval,
            message: String::new(),
            deadline: at(60),
        };
        w.spec.completed = !deleting;
        w.deleting = deleting;
        let d = w.run();
        assert_eq!(w.status.phase, Phase::Completed);
        assert!(d.commands.is_empty() && d.release);
    }
}

#[test]
fn an_unusable_account_fails_before_anything_is_sent() {
    let mut w = World::new(&[A]);
    w.account = AccountAccess::Unusable(AccountProblem::AccountNotFound { name: "prod".into() });
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Failed);
    assert!(d.commands.is_empty());
    assert_eq!(logged(&d), [LogAction::Approved, LogAction::Failed]);
    assert!(d.events[2].message.contains("AwsAccount \"prod\""));
    assert!(w.status.message.contains("AwsAccount \"prod\" does not exist"));
    let ready = w
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition_types::READY)
        .expect("Ready");
    assert!(ready.message.contains("does not exist"), "{}", ready.message);
}

#[test]
fn a_windows_target_shows_the_account_its_script_reported() {
    let mut w = World::new(&[A, B]);
    w.run();
    w.managed(A, Some(Platform::Windows))
        .managed(B, Some(Platform::Windows));
    let d = w.run();
    w.sent(&d);
    // A domain controller reports its per-request domain account; the other the usual name.
    w.invocation(
        A,
        Invocation::Succeeded {
            stdout: "passport-user: rs-1234abcd-0a1b2c\r\npassport: user rs-1234abcd-0a1b2c is ready\r\n"
                .into(),
        },
    );
    w.invocation(
        B,
        Invocation::Succeeded {
            stdout: "passport-user: rs-1234abcd\r\n".into(),
        },
    );
    w.run();
    assert_eq!(w.status.phase, Phase::Active);
    assert_eq!(w.target(A).username.as_deref(), Some("rs-1234abcd-0a1b2c"));
    assert_eq!(w.target(B).username.as_deref(), Some("rs-1234abcd"));
    assert_eq!(w.status.username.as_deref(), Some("rs-1234abcd"));
}

#[test]
fn all_targets_ready_activates_and_starts_the_clock() {
    let mut w = World::new(&[A]);
    w.activate();
    assert_eq!(
        w.status.activated_at,
        Some(Time(at(10))),
        "truncated to the second"
    );
    assert_eq!(w.status.expires_at, Some(Time(at(10 + 3600))));
    assert_eq!(
        w.target(A).host_keys,
        ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpQPuNnmCK/7T3fTS5vZA8z7rYawvf4GLIMXhUdpICQ"]
    );
    assert_eq!(condition(&w.status, condition_types::READY).0, "True");
    assert_eq!(condition(&w.status, condition_types::PROVISIONED).0, "True");
}

#[test]
fn a_restarted_operator_rebuilds_the_deadline_from_status() {
    let mut w = World::new(&[A]);
    w.activate();
    // The operator was down across expiresAt: the first step after restart revokes.
    w.now = at(10 + 3600 + 300);
    let d = w.run();
    assert_eq!(w.status.outcome, Some(Phase::Expired));
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])]);
}

#[test]
fn an_approved_extension_moves_expiry_and_is_logged() {
    let mut w = World::new(&[A]);
    w.activate();
    w.spec.duration = "2h".into();
    let d = w.run();
    assert_eq!(w.status.expires_at, Some(Time(at(10 + 7200))));
    assert_eq!(w.status.approved_duration.as_deref(), Some("2h"));
    assert_eq!(logged(&d), [LogAction::Extended]);
    let d = w.run();
    assert!(logged(&d).is_empty(), "an unchanged duration logs nothing");
}

#[test]
fn an_extension_waits_for_its_own_approval() {
    let mut w = World::new(&[A]);
    w.activate();
    w.spec.duration = "12h".into();
    w.approval = Approval::Waiting {
        reason: WaitReason::AwaitingApproval,
        message: "needs 1 approver under AccessPolicy ops".into(),
        deadline: at(99_999),
    };
    let d = w.run();
    assert_eq!(
        w.status.expires_at,
        Some(Time(at(10 + 3600))),
        "the approved hour stands"
    );
    assert!(w.status.message.contains("extension to 12h awaits approval"));
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_millis(3_599_400)),
        "expiry stays the deadline"
    );
    w.approval = Approval::Denied {
        by: "carol".into(),
        message: "no".into(),
    };
    w.run();
    assert_eq!(w.status.expires_at, Some(Time(at(10 + 3600))));
    assert!(w.status.message.contains("denied by carol"));
}

#[test]
fn terminal_phases_do_nothing_but_release() {
    for phase in [Phase::Completed, Phase::Expired, Phase::Denied, Phase::Failed] {
        let mut w = World::new(&[A]);
        w.status.phase = phase;
        w.spec.completed = true;
        let d = w.run();
        assert_eq!(w.status.phase, phase);
        assert!(d.commands.is_empty() && logged(&d).is_empty() && d.release && d.requeue_after.is_none());
    }
}

fn role() -> AccountRole {
    AccountRole {
        role_arn: "arn:aws:iam::123456789012:role/passport".into(),
        region: "eu-west-1".into(),
        external_id: None,
    }
}

#[test]
fn approval_pins_the_account_and_its_role() {
    let mut w = World::new(&[A]);
    w.run();
    assert_eq!(w.status.account.as_deref(), Some("prod"));
    assert_eq!(w.status.account_role, Some(role()));
}

#[test]
fn command_comments_name_the_request_and_fit_ssm() {
    let uid = "0b5d2f0e-6d0c-4b43-9d3e-2a0f5c7e9b11";
    assert_eq!(
        command_comment(Purpose::Provision, uid, "team-a/r"),
        format!("passport grant {uid} team-a/r")
    );
    let long = format!("team-a/{}", "é".repeat(200));
    assert!(command_comment(Purpose::Revoke, uid, &long).len() <= 100);
}

#[test]
fn a_request_refused_by_policy_is_denied_at_once() {
    let mut w = World::new(&[A]);
    w.approval = Approval::Refused {
        message: "at most 4h under AccessPolicy app-servers".into(),
    };
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Denied);
    assert!(d.commands.is_empty());
    assert!(
        w.status
            .message
            .contains("at most 4h under AccessPolicy app-servers"),
        "{}",
        w.status.message
    );
}

#[test]
fn every_logged_action_lands_in_the_durable_record_with_its_actor() {
    let mut w = World::new(&[A]);
    w.activate();
    w.spec.completed = true;
    let d = w.run();
    w.sent(&d);
    w.succeeded(A);
    w.run();
    let record = w.status.logbook.clone().expect("a record");
    let actions: Vec<(&str, &str)> = record
        .entries
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("created", "alice"),
            ("approved", "policy team-a/ops"),
            ("provisioned", "passport"),
            ("completed", "alice"),
        ]
    );
    let seqs: Vec<u64> = record.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

#[test]
fn an_approved_request_waits_while_the_audit_sink_is_behind_and_revocation_never_does() {
    let mut w = World::new(&[A]);
    w.audit_hold = Some("10000 Logbook records are waiting".into());
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Pending);
    assert!(d.commands.is_empty());
    assert_eq!(
        condition(&w.status, condition_types::AUDIT_SINK_AVAILABLE).0,
        "False"
    );
    w.audit_hold = None;
    w.run();
    assert_eq!(w.status.phase, Phase::Provisioning);
    assert_eq!(
        condition(&w.status, condition_types::AUDIT_SINK_AVAILABLE).0,
        "True"
    );

    let mut active = World::new(&[B]);
    active.activate();
    active.audit_hold = Some("full".into());
    active.spec.completed = true;
    let d = active.run();
    assert_eq!(actions_of(&d), [("revoke", vec![B.to_owned()])]);
}

#[test]
fn an_extension_waits_for_the_audit_sink_like_a_new_grant() {
    let mut w = World::new(&[A]);
    w.activate();
    let expires = w.status.expires_at.clone();
    w.spec.duration = "2h".into();
    w.audit_hold = Some("full".into());
    w.run();
    assert_eq!(w.status.expires_at, expires);
    assert!(
        w.status.message.contains("waiting for the audit sink"),
        "{}",
        w.status.message
    );
    w.audit_hold = None;
    w.run();
    assert_ne!(w.status.expires_at, expires);
}

#[test]
fn commands_in_flight_are_polled_at_once_then_less_often() {
    let polls: Vec<u128> = [0, 1, 4, 20, 80, 600]
        .map(|s| super::poll_interval(Duration::from_secs(s)).as_millis())
        .to_vec();
    assert_eq!(polls, [50, 125, 500, 2500, 10_000, 10_000]);
}

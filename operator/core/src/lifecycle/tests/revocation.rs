//! Revocation: retries and backoff, stuck and resumed, gone instances, sends of unknown outcome.

use super::*;

#[test]
fn active_requeues_exactly_at_expiry_and_revokes_then() {
    let mut w = World::new(&[A]);
    w.activate();
    w.now = at(1000);
    let d = w.run();
    assert_eq!(d.requeue_after, Some(Duration::from_secs(10 + 3600 - 1000)));
    assert!(d.commands.is_empty());

    w.now = at(10 + 3600);
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Revoking);
    assert_eq!(w.status.outcome, Some(Phase::Expired));
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])]);
    assert_eq!(condition(&w.status, condition_types::READY).0, "False");
    w.sent(&d);
    assert_eq!(w.target(A).state, TargetState::Removing);

    w.invocation(A, Invocation::Running);
    let d = w.run();
    assert!(d.commands.is_empty() && w.status.phase == Phase::Revoking);

    w.now = at(10 + 3602);
    w.succeeded(A);
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Expired);
    assert_eq!(w.status.ended_at, Some(Time(at(10 + 3602))));
    assert_eq!(logged(&d), [LogAction::Expired]);
    assert_eq!(w.target(A).state, TargetState::Removed);
}

#[test]
fn completion_and_deletion_revoke_at_once() {
    for deleting in [false, true] {
        let mut w = World::new(&[A]);
        w.activate();
        w.spec.completed = !deleting;
        w.deleting = deleting;
        let d = w.run();
        assert_eq!(w.status.outcome, Some(Phase::Completed));
        assert!(!d.release, "the finalizer stays until the user is removed");
        w.sent(&d);
        w.succeeded(A);
        let d = w.run();
        assert_eq!(w.status.phase, Phase::Completed);
        assert!(d.release);
        let expected = if deleting {
            LogAction::Revoked
        } else {
            LogAction::Completed
        };
        assert_eq!(logged(&d), [expected]);
    }
}

#[test]
fn a_failed_provisioning_command_is_still_revoked() {
    let mut w = World::new(&[A]);
    w.run();
    w.managed(A, Some(Platform::Linux));
    let d = w.run();
    w.sent(&d);
    w.invocation(
        A,
        Invocation::Failed {
            message: "exit 3: user exists".into(),
        },
    );
    let d = w.run();
    assert_eq!(
        w.target(A).state,
        TargetState::Removing,
        "failed, and being revoked"
    );
    assert!(w.target(A).message.contains("user exists"));
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])]);
}

#[test]
fn a_failed_revoke_is_retried_until_it_succeeds() {
    let mut w = World::new(&[A]);
    w.activate();
    w.spec.completed = true;
    let d = w.run();
    w.sent(&d);
    w.invocation(
        A,
        Invocation::Failed {
            message: "timed out".into(),
        },
    );
    let d = w.run();
    assert!(w.target(A).message.contains("retrying"));
    assert!(d.commands.is_empty(), "not at once: retries back off");
    assert_eq!(d.requeue_after, Some(Duration::from_secs(10)));
    w.now += jiff::SignedDuration::from_secs(10);
    let d = w.run();
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])]);
    apply_outcome(
        &mut w.status,
        &CommandOutcome::NotSent {
            command: d.commands[0].clone(),
            error: SendError::Transient("throttled".into()),
        },
        w.now,
    );
    assert_eq!(w.target(A).state, TargetState::Removing);
    assert_eq!(w.target(A).revoke_failures, 2);
    let d = w.run();
    assert!(d.commands.is_empty());
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_secs(20)),
        "the second failure waits twice as long"
    );
    w.now += jiff::SignedDuration::from_secs(20);
    let d = w.run();
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])]);
}

#[test]
fn an_unconfirmed_send_is_a_new_attempt_and_three_are_the_most() {
    let mut w = World::new(&[A]);
    w.run();
    w.managed(A, Some(Platform::Linux));
    for attempt in 1..=MAX_PROVISION_ATTEMPTS {
        // The operator died (or lost the write) after sending: no command id was recorded, and SSM,
        // asked, holds none of them.
        w.observations.lost_sends.insert(A.into(), None);
        let d = w.run();
        assert_eq!(
            actions_of(&d),
            [("provision", vec![A.to_owned()])],
            "attempt {attempt}"
        );
        assert_eq!(w.target(A).attempts, attempt);
    }
    w.observations.lost_sends.insert(A.into(), None);
    let d = w.run();
    assert_eq!(
        w.status.phase,
        Phase::Revoking,
        "given up, and revoked: the user may exist"
    );
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])]);
}

#[test]
fn an_unconfirmed_send_is_revoked_again_once_it_can_no_longer_run() {
    let mut w = World::new(&[A]);
    w.run();
    w.managed(A, Some(Platform::Linux));
    w.run();
    w.spec.completed = true;
    let d = w.run();
    assert_eq!(
        actions_of(&d),
        [("revoke", vec![A.to_owned()])],
        "revoked at once"
    );
    w.sent(&d);
    w.succeeded(A);
    let d = w.run();
    assert!(d.commands.is_empty());
    assert_eq!(
        w.status.phase,
        Phase::Revoking,
        "not done while the unconfirmed command may still run"
    );
    let grace = UNCONFIRMED_GRACE.as_secs() as i64;
    assert_eq!(d.requeue_after, Some(Duration::from_secs(grace as u64)));
    w.now = at(grace);
    let d = w.run();
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])], "once more");
    w.sent(&d);
    w.succeeded(A);
    w.run();
    assert_eq!(w.status.phase, Phase::Completed);
}

#[test]
fn losing_the_account_after_approval_revokes_and_says_why() {
    let mut w = World::new(&[A]);
    w.activate();
    w.account = AccountAccess::Unusable(AccountProblem::AccountNotAllowed {
        name: "prod".into(),
        namespace: "team-a".into(),
    });
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Revoking);
    assert_eq!(w.status.outcome, Some(Phase::Failed));
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])]);
    assert!(
        w.status.message.contains("spec.allowedNamespaces"),
        "{}",
        w.status.message
    );
    assert_eq!(logged(&d), [LogAction::Failed]);
}

#[test]
fn a_revocation_that_keeps_failing_is_reported_stuck_until_it_goes_through() {
    let mut w = World::new(&[A]);
    w.activate();
    w.spec.completed = true;
    let mut logs = Vec::new();
    for _ in 0..STUCK_AFTER {
        let d = w.run();
        logs.extend(logged(&d));
        w.sent(&d);
        w.invocation(
            A,
            Invocation::Failed {
                message: "Undeliverable".into(),
            },
        );
        let d = w.run();
        logs.extend(logged(&d));
        w.now += jiff::SignedDuration::try_from(backoff(w.target(A).revoke_failures)).expect("fits");
    }
    assert_eq!(logs, [LogAction::RevocationStuck]);
    let stuck = condition(&w.status, condition_types::REVOCATION_STUCK);
    assert_eq!(stuck.0, "True");
    let d = w.run();
    w.sent(&d);
    w.succeeded(A);
    let d = w.run();
    assert_eq!(logged(&d), [LogAction::RevocationResumed, LogAction::Completed]);
    assert_eq!(condition(&w.status, condition_types::REVOCATION_STUCK).0, "False");
}

#[test]
fn a_revoke_that_never_reports_is_retried_and_counted() {
    let mut w = World::new(&[A]);
    w.activate();
    w.spec.completed = true;
    let d = w.run();
    w.sent(&d);
    // GetCommandInvocation keeps answering nothing (or "not yet") past SSM's own limits.
    w.now = at(10 + COMMAND_LIFETIME.as_secs() as i64 + 1);
    let d = w.run();
    assert!(d.commands.is_empty());
    assert_eq!(
        w.target(A).revoke_failures,
        1,
        "no outcome in time counts as a failure"
    );
    w.now += jiff::SignedDuration::try_from(backoff(1)).expect("fits");
    let d = w.run();
    assert_eq!(
        actions_of(&d),
        [("revoke", vec![A.to_owned()])],
        "and a fresh revoke goes out"
    );
}

#[test]
fn a_later_attempt_confirmed_does_not_excuse_an_earlier_unconfirmed_one() {
    let mut w = World::new(&[A]);
    w.run();
    w.managed(A, Some(Platform::Linux));
    w.run(); // attempt 1: sent, never recorded
    let d = w.run(); // attempt 2: sent and recorded
    w.sent(&d);
    assert!(w.target(A).unconfirmed_since.is_some(), "attempt 1 may still run");
    w.invocation(
        A,
        Invocation::Succeeded {
            stdout: host_keys_stdout(),
        },
    );
    w.run();
    assert_eq!(w.status.phase, Phase::Active);
    w.spec.completed = true;
    let d = w.run();
    w.sent(&d);
    w.succeeded(A);
    let d = w.run();
    assert_eq!(
        w.status.phase,
        Phase::Revoking,
        "revoked once more when attempt 1 can no longer run"
    );
    assert!(d.requeue_after.is_some());
}

#[test]
fn an_instance_ec2_reports_gone_is_removed_and_the_others_still_revoked() {
    let mut w = World::new(&[A, B]);
    w.activate();
    w.spec.completed = true;
    let d = w.run();
    w.sent(&d);
    w.succeeded(A);
    w.invocation(
        B,
        Invocation::Failed {
            message: "Undeliverable".into(),
        },
    );
    w.run();
    assert_eq!(w.target(A).state, TargetState::Removed);
    assert_eq!(w.target(B).revoke_failures, 1);
    w.observations
        .gone
        .insert(B.into(), "EC2 reports the instance terminated".into());
    let d = w.run();
    assert!(d.commands.is_empty(), "nothing is sent to a terminated instance");
    assert_eq!(w.target(B).state, TargetState::Removed);
    assert!(
        w.target(B).message.contains("terminated"),
        "{}",
        w.target(B).message
    );
    assert_eq!(w.status.phase, Phase::Completed);
}

#[test]
fn a_deny_after_approval_revokes_and_ends_denied() {
    let mut w = World::new(&[A]);
    w.activate();
    w.approval = Approval::Denied {
        by: "carol".into(),
        message: "not during the freeze".into(),
    };
    let d = w.run();
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])]);
    assert_eq!(w.status.outcome, Some(Phase::Denied));
    assert!(
        w.status.message.contains("denied by carol after approval"),
        "{}",
        w.status.message
    );
    w.sent(&d);
    w.succeeded(A);
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Denied);
    assert_eq!(logged(&d), [LogAction::Revoked]);
}

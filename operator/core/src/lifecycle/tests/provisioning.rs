//! Provisioning: the intent before each send, batches, attempts, lost answers, refusals.

use super::*;

#[test]
fn approval_provisions_each_platform_with_its_own_command() {
    let mut w = World::new(&[A, B]);
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Provisioning);
    assert!(w.status.approved_at.is_some());
    assert_eq!(
        w.status.account.as_deref(),
        Some("prod"),
        "the account is pinned at approval"
    );
    assert!(d.commands.is_empty(), "platforms are not known yet");
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_millis(50)),
        "looks again at once"
    );

    w.managed(A, Some(Platform::Linux))
        .managed(B, Some(Platform::Windows));
    let d = w.run();
    assert_eq!(
        d.commands,
        [
            SsmCommand {
                purpose: Purpose::Provision,
                platform: Platform::Linux,
                instance_ids: vec![A.into()],
                account_expires_at: None,
            },
            SsmCommand {
                purpose: Purpose::Provision,
                platform: Platform::Windows,
                instance_ids: vec![B.into()],
                // The approved hour from now, plus the time provisioning may take.
                account_expires_at: Some(at(3600 + 600)),
            },
        ]
    );
    w.sent(&d);
    assert_eq!(w.target(A).state, TargetState::Provisioning);
    assert_eq!(w.target(B).command_id.as_deref(), Some("cmd-1"));
    assert_eq!(w.target(A).account_expires_at, None);
    assert_eq!(w.target(B).account_expires_at, Some(Time(at(4200))));
}

#[test]
fn an_unmanaged_instance_fails_the_request_and_reached_targets_are_cleaned() {
    let mut w = World::new(&[A, B]);
    w.run();
    w.managed(A, Some(Platform::Linux)).managed(B, None);
    let d = w.run();
    assert_eq!(actions_of(&d), [("provision", vec![A.to_owned()])]);
    assert_eq!(w.target(B).state, TargetState::Failed);
    assert!(w.target(B).message.contains("not managed by SSM"));
    w.sent(&d);

    w.succeeded(A);
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Revoking);
    assert_eq!(w.status.outcome, Some(Phase::Failed));
    assert_eq!(
        actions_of(&d),
        [("revoke", vec![A.to_owned()])],
        "B was never reached"
    );
    assert_eq!(w.target(B).state, TargetState::Removed);
    w.sent(&d);
    w.succeeded(A);
    w.run();
    assert_eq!(w.status.phase, Phase::Failed);
}

#[test]
fn revocation_waits_for_a_provisioning_command_in_flight() {
    let mut w = World::new(&[A]);
    w.run();
    w.managed(A, Some(Platform::Linux));
    let d = w.run();
    w.sent(&d);
    w.spec.completed = true;
    w.invocation(A, Invocation::Running);
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Revoking);
    assert!(d.commands.is_empty());
    w.now = at(COMMAND_LIFETIME.as_secs() as i64 - 1);
    w.invocation(A, Invocation::Running);
    assert!(w.run().commands.is_empty(), "SSM may still run it");
    w.succeeded(A);
    let d = w.run();
    assert_eq!(actions_of(&d), [("revoke", vec![A.to_owned()])]);
}

#[test]
fn throttled_sends_are_retried_and_said_in_status() {
    let mut w = World::new(&[A]);
    w.run();
    w.managed(A, Some(Platform::Linux));
    let d = w.run();
    let error = SendError::Transient("ThrottlingException: Rate exceeded".into());
    apply_outcome(
        &mut w.status,
        &CommandOutcome::NotSent {
            command: d.commands[0].clone(),
            error,
        },
        w.now,
    );
    assert_eq!(w.target(A).state, TargetState::Pending);
    assert!(w.target(A).message.contains("ThrottlingException"));
    w.observations.lost_sends.insert(A.into(), None);
    let d = w.run();
    assert_eq!(actions_of(&d), [("provision", vec![A.to_owned()])], "sent again");
}

#[test]
fn provisioning_gives_up_on_unsent_targets_and_waits_for_sent_ones() {
    let mut w = World::new(&[A, B]);
    w.run();
    w.managed(A, Some(Platform::Linux))
        .managed(B, Some(Platform::Linux));
    let d = w.run();
    let sent_to_a = SsmCommand {
        purpose: Purpose::Provision,
        platform: Platform::Linux,
        instance_ids: vec![A.into()],
        account_expires_at: None,
    };
    apply_outcome(
        &mut w.status,
        &CommandOutcome::Sent {
            command: sent_to_a,
            command_id: "cmd-a".into(),
        },
        w.now,
    );
    let never_sent = SsmCommand {
        purpose: Purpose::Provision,
        platform: Platform::Linux,
        instance_ids: vec![B.into()],
        account_expires_at: None,
    };
    let error = SendError::Transient("throttled".into());
    apply_outcome(
        &mut w.status,
        &CommandOutcome::NotSent {
            command: never_sent,
            error,
        },
        w.now,
    );
    assert_eq!(d.commands.len(), 1);
    // Past SSM's own limits no outcome is an outcome; B was never confirmed sent in time either.
    w.now = at(PROVISION_TIMEOUT.as_secs() as i64);
    w.invocation(A, Invocation::Running);
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Revoking);
    assert!(w.status.targets.iter().all(|t| t.state == TargetState::Removing));
    assert_eq!(
        actions_of(&d),
        [("revoke", vec![A.to_owned(), B.to_owned()])],
        "B may have been reached"
    );
}

#[test]
fn fifty_targets_fit_one_command() {
    let ids: Vec<String> = (0..50).map(|i| format!("i-{i:017x}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut w = World::new(&refs);
    w.run();
    for id in &ids {
        w.managed(id, Some(Platform::Linux));
    }
    let d = w.run();
    assert_eq!(d.commands.len(), 1);
    assert_eq!(d.commands[0].instance_ids.len(), 50);
}

#[test]
fn a_send_is_recorded_before_it_goes_out() {
    let mut w = World::new(&[A]);
    w.run();
    w.managed(A, Some(Platform::Linux));
    let d = w.run();
    assert_eq!(actions_of(&d), [("provision", vec![A.to_owned()])]);
    let target = w.target(A);
    assert_eq!(
        (target.state, target.command_id.as_deref(), target.attempts),
        (TargetState::Provisioning, None, 1)
    );
    assert!(
        target.unconfirmed_since.is_some(),
        "the status to write first says a send is starting"
    );
}

#[test]
fn a_send_whose_answer_was_lost_is_looked_up_not_repeated() {
    let mut w = World::new(&[A]);
    w.run();
    w.managed(A, Some(Platform::Linux));
    let d = w.run();
    assert_eq!(actions_of(&d), [("provision", vec![A.to_owned()])]);
    // The answer never came: the target is left unconfirmed, attempt 1.
    assert_eq!(w.target(A).attempts, 1);
    let d = w.run();
    assert!(d.commands.is_empty(), "not sent again before SSM was asked");
    w.observations
        .lost_sends
        .insert(A.into(), Some("cmd-lost".into()));
    let d = w.run();
    assert!(d.commands.is_empty(), "SSM holds it: followed, not repeated");
    assert_eq!(w.target(A).command_id.as_deref(), Some("cmd-lost"));
    assert_eq!(w.target(A).state, TargetState::Provisioning);
    assert_eq!(w.target(A).unconfirmed_since, None);
}

#[test]
fn a_send_ssm_never_took_is_sent_again_as_a_new_attempt() {
    let mut w = World::new(&[A]);
    w.run();
    w.managed(A, Some(Platform::Linux));
    w.run();
    w.observations.lost_sends.insert(A.into(), None);
    let d = w.run();
    assert_eq!(actions_of(&d), [("provision", vec![A.to_owned()])]);
    assert_eq!(w.target(A).attempts, 2);
}

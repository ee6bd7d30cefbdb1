//! A Windows account's own expiry: set at provisioning, moved by an extension.

use super::*;
use crate::time::add;

fn extend_to_three_hours(w: &mut World) {
    w.spec.duration = "3h".into();
    w.approval = Approval::Approved { by: "bob".into() };
    w.now = at(100);
}

#[test]
fn an_extension_moves_the_windows_accounts_own_expiry() {
    let mut w = World::new(&[A]);
    w.activate_as(Platform::Windows);
    let provisioned = w
        .target(A)
        .account_expires_at
        .clone()
        .expect("set at provisioning")
        .0;
    let expires = w.status.expires_at.clone().expect("expiresAt").0;
    assert!(
        provisioned >= expires && provisioned <= add(expires, PROVISION_TIMEOUT),
        "the account expires at {provisioned}, access at {expires}"
    );

    extend_to_three_hours(&mut w);
    let d = w.run();
    let extended = w.status.expires_at.clone().expect("expiresAt").0;
    assert_eq!(extended, add(expires, Duration::from_secs(2 * 3600)));
    assert_eq!(
        d.commands,
        [SsmCommand {
            purpose: Purpose::Extend,
            platform: Platform::Windows,
            instance_ids: vec![A.into()],
            account_expires_at: Some(extended),
        }]
    );

    // Not sent: the target says so, and it is sent again 30 s later, not before (nor in a loop).
    let not_sent = CommandOutcome::NotSent {
        command: d.commands[0].clone(),
        error: SendError::Transient("throttled".into()),
    };
    apply_outcome(&mut w.status, &not_sent, w.now);
    assert!(
        w.target(A).message.contains("not moved"),
        "{}",
        w.target(A).message
    );
    assert_eq!(w.target(A).state, TargetState::Ready);
    let d = w.run();
    assert!(d.commands.is_empty(), "not before the retry");
    assert_eq!(d.requeue_after, Some(Duration::from_secs(30)));
    w.now = at(130);
    let d = w.run();
    assert_eq!(d.commands.len(), 1);
    w.sent(&d);
    let target = w.target(A);
    assert_eq!(target.account_expires_at, Some(Time(extended)));
    assert_eq!(target.state, TargetState::Ready);
    assert!(target.message.is_empty());
    assert!(w.run().commands.is_empty(), "once moved, nothing more is sent");
}

#[test]
fn linux_targets_get_no_extension_command() {
    let mut w = World::new(&[A]);
    w.activate();
    assert_eq!(w.target(A).account_expires_at, None);
    extend_to_three_hours(&mut w);
    let d = w.run();
    assert!(w.status.extended_at.is_some());
    assert!(d.commands.is_empty());
}

#[test]
fn windows_accounts_without_a_recorded_expiry_keep_their_backstop() {
    let mut w = World::new(&[A]);
    w.activate_as(Platform::Windows);
    // Provisioned by an operator that did not record it.
    w.status.targets[0].account_expires_at = None;
    extend_to_three_hours(&mut w);
    assert!(w.run().commands.is_empty());
}

#[test]
fn a_waiting_extension_never_delays_the_revoke() {
    let mut w = World::new(&[A]);
    w.activate_as(Platform::Windows);
    extend_to_three_hours(&mut w);
    let d = w.run();
    let not_sent = CommandOutcome::NotSent {
        command: d.commands[0].clone(),
        error: SendError::NotManaged("instance stopped".into()),
    };
    apply_outcome(&mut w.status, &not_sent, w.now);
    assert!(w.target(A).retry_at.is_some());
    w.spec.completed = true;
    let d = w.run();
    assert_eq!(w.status.phase, Phase::Revoking);
    assert_eq!(d.commands.len(), 1);
    assert_eq!(d.commands[0].purpose, Purpose::Revoke);
}

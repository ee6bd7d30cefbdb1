//! Reuse, the token bucket and the line, without a server.

use jiff::{SignedDuration, Timestamp};
use passport_crds::KeyType;

use super::*;
use crate::{credentials::decide::tests::active, fixtures::*, ssh_ca::IssuedCert};

fn plan_for(public_key: &str) -> Plan {
    decide(
        &spec("alice", public_key.to_owned(), KeyType::Ed25519),
        Some(&active()),
        at(60),
    )
    .expect("plan")
}

fn remembered(plan: &Plan, valid_before: Timestamp) -> Remembered {
    Remembered::new(
        plan,
        vec![IssuedCert {
            algorithm: "ssh-ed25519".into(),
            certificate: "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
            valid_before,
        }],
        SessionCredentials {
            access_key_id: "ASIA".into(),
            secret_access_key: "secret".into(),
            session_token: "token".into(),
            expiration: valid_before + SignedDuration::from_mins(10),
        },
        "team-a/cr-1".into(),
    )
}

fn is_issue(a: &Admission) -> bool {
    matches!(a, Admission::Issue)
}

#[test]
fn a_burst_is_served_then_six_a_minute() {
    let plan = plan_for(&ed25519_line());
    let mut ledger = Ledger::default();
    let now = at(100);
    for n in 0..10 {
        let admitted = ledger.admit(&LIMITS, &plan, &format!("cr-{n}"), "r", now);
        assert!(is_issue(&admitted), "{n}: {admitted:?}");
    }
    // The 11th waits for the next token, 10 s later.
    match ledger.admit(&LIMITS, &plan, "cr-10", "r", now) {
        Admission::Wait { until, message } => {
            assert_eq!(until, at(110));
            assert!(
                message.starts_with(
                    "rate limited: at most 6 new certificates per minute per AccessRequest (bursts of 10)"
                ),
                "{message}"
            );
            assert!(message.contains("0 ahead of it"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Asking again early changes nothing, and states the same time (no status churn).
    match ledger.admit(&LIMITS, &plan, "cr-10", "r", at(105)) {
        Admission::Wait { until, .. } => assert_eq!(until, at(110)),
        other => panic!("{other:?}"),
    }
    // A newcomer waits behind it.
    match ledger.admit(&LIMITS, &plan, "cr-11", "r", at(105)) {
        Admission::Wait { until, message } => {
            assert_eq!(until, at(120));
            assert!(message.contains("1 ahead of it"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // At 110 the first in line is served, and the newcomer is not served out of turn.
    assert!(!is_issue(&ledger.admit(&LIMITS, &plan, "cr-11", "r", at(110))));
    assert!(is_issue(&ledger.admit(&LIMITS, &plan, "cr-10", "r", at(110))));
    assert!(is_issue(&ledger.admit(&LIMITS, &plan, "cr-11", "r", at(120))));
    assert_eq!(ledger.waiting(), 0);
}

#[test]
fn issues_over_time_never_exceed_burst_plus_rate() {
    let plan = plan_for(&ed25519_line());
    let mut ledger = Ledger::default();
    let mut issued = 0;
    // One new CredentialRequest a second for ten minutes, each asking once a second until decided.
    let mut open: Vec<String> = Vec::new();
    for second in 0..600 {
        open.push(format!("cr-{second}"));
        let now = at(second);
        open.retain(|id| match ledger.admit(&LIMITS, &plan, id, "r", now) {
            Admission::Issue => {
                issued += 1;
                false
            }
            Admission::Refuse(_) => false,
            Admission::Wait { .. } => true,
            Admission::Reuse(_) => unreachable!("nothing remembered"),
        });
        let allowed = 10 + 6 * (second + 1) / 60 + 1;
        assert!(issued <= allowed, "{issued} issued by {second}s");
    }
    assert!(issued >= 60, "{issued}: the sustained rate is served");
    assert!(
        ledger.waiting() <= 13,
        "{} wait: the line is bounded by max_wait",
        ledger.waiting()
    );
}

#[test]
fn past_the_line_a_request_is_refused_with_when_to_retry() {
    let plan = plan_for(&ed25519_line());
    let mut ledger = Ledger::default();
    let now = at(0);
    let mut refused = None;
    for n in 0..40 {
        if let Admission::Refuse(refusal) = ledger.admit(&LIMITS, &plan, &format!("cr-{n}"), "r", now) {
            refused.get_or_insert((n, refusal));
        }
    }
    let (n, refusal) = refused.expect("refused");
    // 10 at once, then 12 in line (two minutes at 6 a minute).
    assert_eq!(n, 22);
    assert_eq!(refusal.reason, Reason::RateLimited);
    assert!(
        refusal
            .message
            .starts_with("rate limited: at most 6 new certificates per minute"),
        "{}",
        refusal.message
    );
    assert!(
        refusal
            .message
            .contains("12 CredentialRequest(s) of AccessRequest r already wait")
            && refusal.message.contains("retry after 20"),
        "{}",
        refusal.message
    );
}

#[test]
fn waiters_that_never_come_back_lose_their_place() {
    let plan = plan_for(&ed25519_line());
    let mut ledger = Ledger::default();
    for n in 0..10 {
        ledger.admit(&LIMITS, &plan, &format!("cr-{n}"), "r", at(0));
    }
    assert!(matches!(
        ledger.admit(&LIMITS, &plan, "gone", "r", at(0)),
        Admission::Wait { .. }
    ));
    // "gone" was due at 10 and is not back 30 s later: the next one is served.
    assert!(is_issue(&ledger.admit(&LIMITS, &plan, "next", "r", at(41))));
}

#[test]
fn the_same_key_is_given_the_same_certificate_while_it_has_a_minute_left() {
    let key = ed25519_line();
    let plan = plan_for(&key);
    let mut ledger = Ledger::default();
    assert!(is_issue(&ledger.admit(&LIMITS, &plan, "cr-0", "r", at(60))));
    ledger.remember(remembered(&plan, at(360)), at(60));
    // Another CredentialRequest, same key (another comment): the same certificate, no token taken.
    let again = plan_for(&format!(
        "{} laptop",
        key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    ));
    for n in 1..50 {
        match ledger.admit(&LIMITS, &again, &format!("cr-{n}"), "r", at(100)) {
            Admission::Reuse(r) => assert_eq!(r.issued_for, "team-a/cr-1"),
            other => panic!("{n}: {other:?}"),
        }
    }
    // Another key: a new issue (9 tokens left).
    assert!(is_issue(&ledger.admit(
        &LIMITS,
        &plan_for(&ed25519_line()),
        "other",
        "r",
        at(100)
    )));
    // With a minute or less left, not reused.
    assert!(is_issue(&ledger.admit(&LIMITS, &again, "late", "r", at(300))));
}

#[test]
fn reuse_needs_the_same_key_type_user_and_targets() {
    let plan = plan_for(&ed25519_line());
    let stored = remembered(&plan, at(360));
    assert!(stored.fits(&plan, at(60)));
    let mut other_targets = plan.clone();
    other_targets.instance_ids.pop();
    assert!(!stored.fits(&other_targets, at(60)));
    let mut other_user = plan.clone();
    other_user.username = "rs-00000000".into();
    assert!(!stored.fits(&other_user, at(60)));
    let mut other_type = plan.clone();
    other_type.key_type = KeyType::Rsa;
    assert!(!stored.fits(&other_type, at(60)));
    // An AWS session ending sooner than the certificate bounds the reuse.
    let mut short = stored.clone();
    short.valid_until = at(100);
    assert!(!short.fits(&plan, at(60)));
}

#[test]
fn an_idle_ledger_can_be_forgotten() {
    let plan = plan_for(&ed25519_line());
    let mut ledger = Ledger::default();
    assert!(ledger.idle(&LIMITS, at(0)));
    ledger.admit(&LIMITS, &plan, "cr", "r", at(0));
    assert!(!ledger.idle(&LIMITS, at(1)), "a token is missing");
    assert!(ledger.idle(&LIMITS, at(11)), "refilled");
    ledger.remember(remembered(&plan, at(360)), at(11));
    assert!(!ledger.idle(&LIMITS, at(12)), "a certificate to reuse");
    assert!(ledger.idle(&LIMITS, at(301)));
}

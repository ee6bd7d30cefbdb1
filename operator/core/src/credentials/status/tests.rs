//! The status once decided, the logbook entry, cleanup, retries, the TTL flag, and the signer's rate.

use std::{sync::LazyLock, time::Duration};

use jiff::{SignedDuration, Timestamp};
use passport_crds::{
    KeyType,
    common::{Time, condition_types::ISSUED},
};

use crate::{
    credentials::{decide::aws_unavailable, decide::tests::active, status, *},
    fixtures::*,
};

fn credentials(expiration: Timestamp) -> SessionCredentials {
    SessionCredentials {
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: "very-secret".into(),
        session_token: "token-secret".into(),
        expiration,
    }
}

#[test]
fn issued_status_and_event() {
    let request = active();
    let public_key = ed25519_line();
    let now = at(60);
    let plan = decide(
        &spec("alice", public_key.clone(), KeyType::Ed25519),
        Some(&request),
        now,
    )
    .expect("plan");
    let certs = CA
        .sign(&plan.certificate_request(&public_key, now, DEFAULT_CERTIFICATE_TTL))
        .expect("sign");
    let session = status::aws_session(&plan, &credentials(at(7200)));
    assert_eq!(session.expiration, rfc3339(at(3600)), "clamped to expiresAt");
    assert_eq!(
        status::aws_session(&plan, &credentials(at(1000))).expiration,
        rfc3339(at(1000))
    );
    let sealed = vec![seal::aws_session(&plan.recipient, &session).expect("seal")];
    let issued = status::issued(&plan, &certs, sealed, Some(1), now);
    assert_eq!(issued.valid_before, Some(Time(at(360))));
    assert_eq!(issued.username.as_deref(), Some("rs-5f3a9c21"));
    assert_eq!(issued.certificates.len(), 1);
    assert_eq!(issued.observed_generation, Some(1));
    assert_eq!(issued.conditions[0].type_, ISSUED);
    assert_eq!(issued.conditions[0].status, "True");
    let text = serde_json::to_string(&issued).expect("JSON");
    assert!(!text.contains("very-secret") && !text.contains("token-secret") && !text.contains("ASIAEXAMPLE"));
    assert!(status::is_decided(Some(&issued)));

    let event = status::issued_event(&plan, "team-a/cr-1", "alice", at(360));
    assert_eq!(event.action.as_str(), "credential_issued");
    assert!(
        event.message.contains(&plan.serial.to_string()),
        "{}",
        event.message
    );
    assert!(
        event.message.contains("passport-rs-5f3a9c21-0a1b2c3d"),
        "{}",
        event.message
    );
    assert!(!event.message.contains("ASIA") && !event.message.contains("secret"));

    // Kept an hour past validBefore.
    assert_eq!(
        status::delete_after(Some(at(59)), Some(&issued)),
        Some(at(360 + 3600))
    );
}

#[test]
fn refused_requests_are_decided_and_kept_an_hour_from_creation() {
    let refused = status::refused(
        &Refusal {
            reason: Reason::RequesterMismatch,
            message: "no".into(),
        },
        Some(2),
        at(10),
    );
    assert_eq!(refused.conditions[0].status, "False");
    assert_eq!(refused.conditions[0].reason, "RequesterMismatch");
    assert!(refused.certificates.is_empty() && refused.sealed_secrets.is_empty());
    assert!(status::is_decided(Some(&refused)));
    assert_eq!(status::delete_after(Some(at(5)), Some(&refused)), Some(at(3605)));

    // Undecided (nothing yet, or retrying AWS): never deleted.
    assert!(!status::is_decided(None));
    let mut waiting = refused.clone();
    waiting.conditions[0].status = "Unknown".into();
    assert!(!status::is_decided(Some(&waiting)));
    assert_eq!(status::delete_after(Some(at(5)), Some(&waiting)), None);
}

#[test]
fn aws_failures_are_retried_then_refused() {
    let role = "arn:aws:iam::123456789012:role/passport";
    assert_eq!(aws_unavailable(at(0), at(119), role, "AccessDenied"), None);
    let refused = aws_unavailable(at(0), at(120), role, "AccessDenied: nope").expect("gave up");
    assert_eq!(refused.reason, Reason::AwsUnavailable);
    assert!(refused.message.contains("AccessDenied: nope") && refused.message.contains(role));
}

#[test]
fn certificate_ttl_is_bounded() {
    assert_eq!(parse_certificate_ttl("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_certificate_ttl("1h"), Ok(Duration::from_secs(3600)));
    assert!(matches!(
        parse_certificate_ttl("59s"),
        Err(TtlError::OutOfRange(_))
    ));
    assert!(matches!(
        parse_certificate_ttl("2h"),
        Err(TtlError::OutOfRange(_))
    ));
    assert!(matches!(parse_certificate_ttl("five"), Err(TtlError::Syntax(_))));
}

/// The signer alone: `cargo test --release -p passport-operator --lib -- --ignored signer_rate --nocapture`.
#[test]
#[ignore = "measurement; run in a release build"]
fn signer_rate() {
    let now = Timestamp::now();
    let mut request = active();
    request.status.as_mut().expect("status").expires_at = Some(Time(now + SignedDuration::from_hours(1)));
    let public_key = ed25519_line();
    let plan = decide(
        &spec("alice", public_key.clone(), KeyType::Ed25519),
        Some(&request),
        now,
    )
    .expect("plan");
    // Generate the CA (an RSA-3072 prime search) outside the timing.
    LazyLock::force(&CA);
    let count = 2000;
    let started = std::time::Instant::now();
    for _ in 0..count {
        let issued = CA
            .sign(&plan.certificate_request(&public_key, now, DEFAULT_CERTIFICATE_TTL))
            .expect("sign");
        assert_eq!(issued.len(), 1);
    }
    let elapsed = started.elapsed();
    println!(
        "signer: {count} Ed25519 certificates in {elapsed:?}: {:.0} certificates/s on one core",
        f64::from(count) / elapsed.as_secs_f64()
    );
    let rsa = spec("alice", RSA_2048.into(), KeyType::Rsa);
    let plan = decide(&rsa, Some(&request), now).expect("plan");
    let count = 100;
    let started = std::time::Instant::now();
    for _ in 0..count {
        CA.sign(&plan.certificate_request(&rsa.public_key, now, DEFAULT_CERTIFICATE_TTL))
            .expect("sign");
    }
    let elapsed = started.elapsed();
    println!(
        "signer: {count} RSA key requests (2 RSA-3072 signatures each) in {elapsed:?}: {:.0} requests/s",
        f64::from(count) / elapsed.as_secs_f64()
    );
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

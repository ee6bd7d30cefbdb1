//! The status once decided, the logbook entry, cleanup, retries, the TTL flag, and the signer's rate.

use std::{sync::LazyLock, time::Duration};

use jiff::{SignedDuration, Timestamp};
use passport_crds::{
    KeyType,
    common::{Time, condition_types::ISSUED},
};

use crate::{
    credentials::{
        decide::aws_unavailable,
        decide::tests::{active, alice_ed25519_plan},
        status, *,
    },
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
        event.message.contains("passport-4f1c2d3e-rs-5f3a9c21-0a1b2c3d"),
        "{}",
        event.message
    );
    assert!(!event.message.contains("ASIA") && !event.message.contains("secret"));
    assert!(
        event
            .message
            .contains(&format!("ed25519 certificate serial {}", plan.serial))
            && event.message.contains(&format!("(key id \"{}\")", plan.key_id))
            && event.message.contains(&format!("valid until {}", at(360)))
            && event.message.contains(&format!("for target(s) {A}, {B}, {W}")),
        "{}",
        event.message
    );

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

/// RFC 6902 `test`, `add` and `replace`, enough to check the logbook patch the way the apiserver
/// applies it: all or nothing.
fn apply(document: &serde_json::Value, ops: &[serde_json::Value]) -> Result<serde_json::Value, String> {
    let mut doc = document.clone();
    for op in ops {
        let path = op["path"].as_str().ok_or("no path")?;
        let (parent, last) = path.rsplit_once('/').ok_or("bad path")?;
        match op["op"].as_str() {
            Some("test") => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test failed at {path}"));
                }
            }
            Some("add" | "replace") => {
                let target = doc.pointer_mut(parent).ok_or(format!("no {parent}"))?;
                match target {
                    serde_json::Value::Array(items) if last == "-" => items.push(op["value"].clone()),
                    serde_json::Value::Object(map) => {
                        map.insert(last.to_owned(), op["value"].clone());
                    }
                    _ => return Err(format!("cannot add at {path}")),
                }
            }
            other => return Err(format!("unexpected op {other:?}")),
        }
    }
    Ok(doc)
}

fn object(record: Option<&passport_crds::logbook::LogbookRecord>) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"uid": "u-1", "resourceVersion": "7"},
        "status": {"phase": "Active", "logbook": record},
    })
}

#[test]
fn the_logbook_patch_appends_only_to_the_record_it_was_computed_from() {
    use passport_crds::logbook::LogbookRecord;

    use crate::logbook::{LogAction, LogEvent, record};
    let mut current = LogbookRecord::default();
    record::append(
        &mut current,
        &LogEvent::normal(LogAction::Created, "created"),
        "alice",
        at(0),
    );
    record::append(
        &mut current,
        &LogEvent::normal(LogAction::Approved, "approved"),
        "bob",
        at(1),
    );
    current.delivered = 1;
    let issued = LogEvent::normal(LogAction::CredentialIssued, "ed25519 certificate serial 42");
    let ops = status::logbook_patch(Some(&current), "u-1", "7", &issued, "alice", at(60));
    let written = apply(&object(Some(&current)), &ops).expect("applies");
    let back: LogbookRecord = serde_json::from_value(written["status"]["logbook"].clone()).expect("a record");
    assert_eq!(back.entries.len(), 3);
    assert_eq!(back.entries[2].seq, 3);
    assert_eq!(back.entries[2].action, "credential_issued");
    assert_eq!(back.entries[2].actor, "alice");
    assert_eq!(back.delivered, 1, "the sink's progress is left alone");
    assert_eq!(back.credentials.as_ref().map(|c| c.count), Some(1));

    // Someone appended meanwhile: the patch fails rather than reuse seq 3 or drop their entry.
    let mut moved = current.clone();
    record::append(
        &mut moved,
        &LogEvent::normal(LogAction::Extended, "extended"),
        "bob",
        at(30),
    );
    assert!(apply(&object(Some(&moved)), &ops).is_err());
    // Another issue was counted meanwhile: fails too.
    let mut counted = back.clone();
    let again = status::logbook_patch(Some(&back), "u-1", "8", &issued, "alice", at(61));
    counted.credentials.as_mut().expect("count").count += 1;
    counted.entries.pop();
    assert!(apply(&object(Some(&counted)), &again).is_err());
    // Another object of the same name: fails.
    let mut other = object(Some(&current));
    other["metadata"]["uid"] = "u-2".into();
    assert!(apply(&other, &ops).is_err());
}

#[test]
fn the_logbook_patch_writes_a_new_record_whole_and_counts_past_the_limit() {
    use passport_crds::logbook::{LogbookRecord, MAX_ENTRIES};

    use crate::logbook::{LogAction, LogEvent, record};
    let issued = LogEvent::normal(LogAction::CredentialIssued, "certificate");
    // No record yet: fenced by the resourceVersion.
    let ops = status::logbook_patch(None, "u-1", "7", &issued, "alice", at(0));
    let written = apply(&object(None), &ops).expect("applies");
    assert_eq!(written["status"]["logbook"]["entries"][0]["seq"], 1);
    let mut newer = object(None);
    newer["metadata"]["resourceVersion"] = "8".into();
    assert!(apply(&newer, &ops).is_err());

    // A full record: the issue is counted, no entry added.
    let mut full = LogbookRecord::default();
    for n in 0..MAX_ENTRIES as i64 {
        record::append(&mut full, &issued, "alice", at(n));
    }
    let ops = status::logbook_patch(Some(&full), "u-1", "7", &issued, "alice", at(500));
    let written = apply(&object(Some(&full)), &ops).expect("applies");
    let back: LogbookRecord = serde_json::from_value(written["status"]["logbook"].clone()).expect("a record");
    assert_eq!(back.entries.len(), MAX_ENTRIES);
    assert_eq!(
        back.credentials.as_ref().map(|c| (c.count, c.last.0)),
        Some((MAX_ENTRIES as u64 + 1, at(500)))
    );
}

#[test]
fn a_reused_certificate_is_the_same_and_says_so() {
    use crate::credentials::limit::Remembered;
    let request = active();
    let (public_key, plan) = alice_ed25519_plan(&request);
    let certs = CA
        .sign(&plan.certificate_request(&public_key, at(60), DEFAULT_CERTIFICATE_TTL))
        .expect("sign");
    let remembered = Remembered::new(&plan, certs.clone(), credentials(at(960)), "team-a/cr-1".into());
    assert_eq!(remembered.valid_until, at(360));
    let reused = status::reused(&plan, &remembered, Vec::new(), Some(1), at(100));
    assert_eq!(reused.certificates[0].certificate, certs[0].certificate);
    assert_eq!(reused.valid_before, Some(Time(at(360))));
    let issued = &reused.conditions[0];
    assert_eq!(
        (issued.status.as_str(), issued.reason.as_str()),
        ("True", "Reused")
    );
    assert!(
        issued.message.starts_with(&format!(
            "reused the ed25519 certificate serial {} issued to CredentialRequest team-a/cr-1",
            plan.serial
        )),
        "{}",
        issued.message
    );
    assert!(status::is_decided(Some(&reused)));
}

use jiff::Timestamp;
use passport_crds::{
    common::{Condition, Time},
    conditions::types::RECONCILED,
    credential_request::CredentialRequestStatus,
};

use super::*;
use crate::{fixtures, workstation::key_dir::generate};

fn credential_request(conditions: Vec<Condition>) -> CredentialRequest {
    let mut object = CredentialRequest::new(
        "db-cred-abcde",
        CredentialRequestSpec {
            access_request: "db".into(),
            requester: "alice".into(),
            public_key: String::new(),
            key_type: KeyType::Ed25519,
            sealing_key: String::new(),
        },
    );
    object.status = Some(CredentialRequestStatus {
        conditions,
        ..CredentialRequestStatus::default()
    });
    object
}

fn issued_condition(status: ConditionStatus, reason: &str, message: &str) -> Condition {
    fixtures::condition(ISSUED, status, reason, message)
}

#[test]
fn rsa_prefers_sha2_512_certificates() {
    let certificate = |algorithm: &str, certificate: &str| IssuedCertificate {
        algorithm: algorithm.into(),
        certificate: certificate.into(),
    };
    let certs = vec![
        certificate("ssh-rsa", "a"),
        certificate("rsa-sha2-512", "b"),
        certificate("rsa-sha2-256", "c"),
    ];
    assert_eq!(
        pick_certificate(&certs, KeyType::Rsa).map(|c| c.certificate.as_str()),
        Some("b")
    );
    let ed = vec![certificate("ssh-ed25519", "e")];
    assert_eq!(
        pick_certificate(&ed, KeyType::Ed25519).map(|c| c.certificate.as_str()),
        Some("e")
    );
    assert!(pick_certificate(&[], KeyType::Rsa).is_none());
    assert_eq!(
        pick_sha1_certificate(&certs, KeyType::Rsa).map(|c| c.certificate.as_str()),
        Some("a")
    );
    assert!(pick_sha1_certificate(&ed, KeyType::Ed25519).is_none());
    assert!(
        pick_certificate(&certs[..1], KeyType::Rsa).is_none(),
        "the ssh-rsa certificate is never the first one offered"
    );
}

#[test]
fn issued_condition_verdicts() {
    assert_eq!(issued_state(&credential_request(vec![])), None);
    let ok = credential_request(vec![issued_condition(ConditionStatus::True, "Issued", "")]);
    assert_eq!(issued_state(&ok), Some(Ok(())));
    let refused = credential_request(vec![issued_condition(
        ConditionStatus::False,
        "RequesterMismatch",
        "AccessRequest db belongs to alice",
    )]);
    assert_eq!(
        issued_state(&refused),
        Some(Err(
            "RequesterMismatch: AccessRequest db belongs to alice".to_owned()
        ))
    );
    let mut stale = refused.clone();
    stale.metadata.generation = Some(2);
    if let Some(status) = stale.status.as_mut() {
        status.conditions[0].observed_generation = Some(1);
    }
    assert_eq!(issued_state(&stale), None, "a verdict on an older generation");
}

#[test]
fn waiting_shows_the_operators_reason() {
    let retrying = credential_request(vec![issued_condition(
        ConditionStatus::Unknown,
        "AwsUnavailable",
        "waiting for an AWS session from arn:aws:iam::1:role/p; retrying",
    )]);
    assert_eq!(
        waiting_reason(&retrying).as_deref(),
        Some("AwsUnavailable: waiting for an AWS session from arn:aws:iam::1:role/p; retrying")
    );
    let failing = credential_request(vec![
        issued_condition(ConditionStatus::Unknown, "AwsUnavailable", "retrying"),
        fixtures::condition(
            RECONCILED,
            ConditionStatus::False,
            "SigningFailed",
            "the CA key is unreadable",
        ),
    ]);
    assert_eq!(
        waiting_reason(&failing).as_deref(),
        Some("SigningFailed: the CA key is unreadable"),
        "a failing reconcile says more than a pending condition"
    );
    assert_eq!(waiting_reason(&credential_request(vec![])), None);
}

#[test]
fn a_timeout_suggests_the_operator_only_when_it_wrote_nothing() {
    let mut seen = Seen::default();
    assert_eq!(seen.why_not_issued(), "is the passport operator running?");
    let mut silent = credential_request(vec![]);
    silent.status = None;
    assert_eq!(seen.update(&silent), None);
    assert_eq!(seen.why_not_issued(), "is the passport operator running?");
    assert_eq!(seen.update(&credential_request(vec![])), None);
    assert_eq!(seen.why_not_issued(), "the operator has not said why");
    let retrying = credential_request(vec![issued_condition(
        ConditionStatus::Unknown,
        "AwsUnavailable",
        "retrying",
    )]);
    assert_eq!(seen.update(&retrying), Some("AwsUnavailable: retrying"));
    assert_eq!(seen.update(&retrying), None, "said once");
    assert_eq!(seen.why_not_issued(), "AwsUnavailable: retrying");
}

#[test]
fn issued_status_is_checked_against_the_key() -> Result<()> {
    let ca = generate(KeyType::Ed25519, "ca")?;
    let key = generate(KeyType::Ed25519, "me")?;
    let stranger = generate(KeyType::Ed25519, "other")?;
    let now = fixtures::now_seconds();
    let cert = fixtures::certify(key.public_key(), &ca, now - 10, now + 600);
    let valid_before = Timestamp::from_second(i64::try_from(now + 300)?)?;
    let mut object = credential_request(vec![issued_condition(ConditionStatus::True, "Issued", "")]);
    object.status = Some(CredentialRequestStatus {
        certificates: vec![IssuedCertificate {
            algorithm: "ssh-ed25519".into(),
            certificate: cert.to_openssh()?,
        }],
        valid_before: Some(Time(valid_before)),
        ..object.status.unwrap_or_default()
    });
    let request = fixtures::provisioned_request();
    let issued = from_status(&object, &request, KeyType::Ed25519, key.public_key())?;
    assert_eq!(
        issued.username,
        fixtures::USERNAME,
        "falls back to the request's username"
    );
    assert_eq!(
        issued.valid_before,
        valid_before.as_second(),
        "the earlier end wins"
    );
    assert_eq!(issued.access_request_uid, "uid-1");
    assert_eq!(issued.host_keys[0].instance_id, fixtures::INSTANCE);
    let err = from_status(&object, &request, KeyType::Ed25519, stranger.public_key()).expect_err("other key");
    assert!(err.to_string().contains("another key"), "{err}");
    Ok(())
}

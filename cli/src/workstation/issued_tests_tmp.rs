use super::*;
use passport_crds::{
    AccessRequestSpec,
    access_request::{AccessRequestStatus, TargetStatus},
    common::{Condition, Time},
    credential_request::CredentialRequestStatus,
    sealed::WINDOWS_PASSWORD,
};
use ssh_key::{PrivateKey, certificate};

use crate::keys::generate;

fn certify(key: &PublicKey, ca: &PrivateKey, after: u64, before: u64) -> Certificate {
    let mut builder = certificate::Builder::new_with_random_nonce(
        &mut rand_core::OsRng,
        key.key_data().clone(),
        after,
        before,
    )
    .expect("builder");
    builder.valid_principal("rs-0a1b2c3d").expect("principal");
    builder.sign(ca).expect("sign")
}

fn now() -> u64 {
    u64::try_from(Timestamp::now().as_second()).expect("after 1970")
}

fn request() -> AccessRequest {
    let mut request = AccessRequest::new(
        "db",
        AccessRequestSpec::new("alice", "test", ["i-0123456789abcdef0"]),
    );
    request.metadata.uid = Some("uid-1".into());
    request.status = Some(AccessRequestStatus {
        username: Some("rs-0a1b2c3d".into()),
        targets: vec![TargetStatus {
            instance_id: "i-0123456789abcdef0".into(),
            host_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA host".into()],
            ..TargetStatus::default()
        }],
        ..AccessRequestStatus::default()
    });
    request
}

fn condition(status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: ISSUED.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Time(Timestamp::now()),
        observed_generation: None,
    }
}

fn credential_request(status: CredentialRequestStatus) -> CredentialRequest {
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
    object.status = Some(status);
    object
}

#[test]
fn known_hosts_pin_keys_by_instance_id() {
    let keys = vec![
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA root@host".to_owned(),
        "ecdsa-sha2-nistp256 AAAAE2VjZHNh".to_owned(),
        "garbage".to_owned(),
        "ssh-rsa not/base64!".to_owned(),
    ];
    let other = vec!["ssh-rsa AAAAB3NzaC1yc2E=".to_owned()];
    let text = render_known_hosts(&[("i-0123456789abcdef0", &keys), ("i-0fedcba9876543210", &other)]);
    assert_eq!(
        text,
        "i-0123456789abcdef0 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n\
         i-0123456789abcdef0 ecdsa-sha2-nistp256 AAAAE2VjZHNh\n\
         i-0fedcba9876543210 ssh-rsa AAAAB3NzaC1yc2E=\n"
    );
}

#[test]
fn rsa_prefers_sha2_512_certificates() {
    let certs = vec![
        IssuedCertificate {
            algorithm: "ssh-rsa".into(),
            certificate: "a".into(),
        },
        IssuedCertificate {
            algorithm: "rsa-sha2-512".into(),
            certificate: "b".into(),
        },
        IssuedCertificate {
            algorithm: "rsa-sha2-256".into(),
            certificate: "c".into(),
        },
    ];
    assert_eq!(
        pick_certificate(&certs, KeyType::Rsa).map(|c| c.certificate.as_str()),
        Some("b")
    );
    let ed = vec![IssuedCertificate {
        algorithm: "ssh-ed25519".into(),
        certificate: "e".into(),
    }];
    assert_eq!(
        pick_certificate(&ed, KeyType::Ed25519).map(|c| c.certificate.as_str()),
        Some("e")
    );
    assert!(pick_certificate(&[], KeyType::Rsa).is_none());
}

#[test]
fn issued_condition_verdicts() {
    let pending = credential_request(CredentialRequestStatus::default());
    assert_eq!(issued_state(&pending), None);
    let ok = credential_request(CredentialRequestStatus {
        conditions: vec![condition("True", "Issued", "")],
        ..Default::default()
    });
    assert_eq!(issued_state(&ok), Some(Ok(())));
    let refused = credential_request(CredentialRequestStatus {
        conditions: vec![condition(
            "False",
            "RequesterMismatch",
            "AccessRequest db belongs to alice",
        )],
        ..Default::default()
    });
    assert_eq!(
        issued_state(&refused),
        Some(Err(
            "RequesterMismatch: AccessRequest db belongs to alice".to_owned()
        ))
    );
}

#[test]
fn issued_status_is_checked_against_the_key() -> anyhow::Result<()> {
    let ca = generate(KeyType::Ed25519, "ca")?;
    let key = generate(KeyType::Ed25519, "me")?;
    let stranger = generate(KeyType::Ed25519, "other")?;
    let cert = certify(key.public_key(), &ca, now() - 10, now() + 600);
    let valid_before = Timestamp::from_second(i64::try_from(now() + 300)?)?;
    let object = credential_request(CredentialRequestStatus {
        certificates: vec![IssuedCertificate {
            algorithm: "ssh-ed25519".into(),
            certificate: cert.to_openssh()?,
        }],
        valid_before: Some(Time(valid_before)),
        conditions: vec![condition("True", "Issued", "")],
        ..Default::default()
    });
    let issued = from_status(&object, &request(), KeyType::Ed25519, key.public_key())?;
    assert_eq!(
        issued.username, "rs-0a1b2c3d",
        "falls back to the request's username"
    );
    assert_eq!(
        issued.valid_before,
        valid_before.as_second(),
        "the earlier end wins"
    );
    assert_eq!(issued.access_request_uid, "uid-1");
    assert_eq!(issued.host_keys[0].instance_id, "i-0123456789abcdef0");
    let err =
        from_status(&object, &request(), KeyType::Ed25519, stranger.public_key()).expect_err("other key");
    assert!(err.to_string().contains("another key"), "{err}");
    Ok(())
}

#[test]
fn certificate_validity_window() -> anyhow::Result<()> {
    let ca = generate(KeyType::Ed25519, "ca")?;
    let key = generate(KeyType::Ed25519, "me")?;
    let t = now();
    let now = i64::try_from(t)?;
    assert!(valid_between(
        &certify(key.public_key(), &ca, t - 5, t + 600),
        now,
        60
    ));
    assert!(
        !valid_between(&certify(key.public_key(), &ca, t - 5, t + 30), now, 60),
        "ends too soon"
    );
    assert!(
        !valid_between(&certify(key.public_key(), &ca, t + 600, t + 900), now, 60),
        "not started"
    );
    Ok(())
}

#[test]
fn secrets_unseal_with_the_stored_identity_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = KeyDir {
        dir: dir.path().to_owned(),
        key_type: KeyType::Ed25519,
    };
    let identity = keys.new_sealing_identity()?;
    let sealed = age::encrypt_and_armor(&identity.to_public(), b"P@ssw0rd!")?;
    let mut issued = Issued {
        access_request_uid: "u".into(),
        credential_request: "db-cred-x".into(),
        username: "rs-1".into(),
        valid_before: 0,
        certificate: String::new(),
        host_keys: vec![],
        tunnel: None,
        sealed_secrets: vec![SealedSecret {
            kind: WINDOWS_PASSWORD.into(),
            instance_id: Some("i-0123456789abcdef0".into()),
            ciphertext: sealed,
        }],
    };
    let plain = unseal(&keys, &issued, WINDOWS_PASSWORD, Some("i-0123456789abcdef0"))?;
    assert_eq!(plain, b"P@ssw0rd!");
    let missing = unseal(&keys, &issued, WINDOWS_PASSWORD, Some("i-0fedcba9876543210")).expect_err("other");
    assert!(
        missing
            .to_string()
            .contains("no windows-password secret for i-0fedcba9876543210")
    );
    keys.new_sealing_identity()?;
    issued.sealed_secrets[0].instance_id = None;
    let wrong =
        unseal(&keys, &issued, WINDOWS_PASSWORD, Some("i-0123456789abcdef0")).expect_err("new identity");
    assert!(wrong.to_string().contains("cannot unseal"), "{wrong}");
    Ok(())
}

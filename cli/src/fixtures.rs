//! Sample objects for unit tests, shared so that tests build them one way.

use std::path::Path;

use jiff::Timestamp;
use passport_crds::{
    AccessRequest, AccessRequestSpec, KeyType, Phase,
    access_request::{AccessRequestStatus, TargetStatus},
    common::{Condition, Time},
    conditions::ConditionStatus,
};
use ssh_key::{Certificate, PrivateKey, PublicKey, certificate};

use crate::workstation::{issued::Issued, key_dir::KeyDir};

pub const INSTANCE: &str = "i-0123456789abcdef0";
pub const OTHER_INSTANCE: &str = "i-0fedcba9876543210";
/// The OS user the operator made for alice.
pub const USERNAME: &str = "rs-5f3a9c21";

/// alice's AccessRequest `db` for `instances`, "CPU alarm", without status.
pub fn access_request(instances: &[&str]) -> AccessRequest {
    AccessRequest::new(
        "db",
        AccessRequestSpec::new("alice", "CPU alarm", instances.iter().copied()),
    )
}

/// The same, in `phase` with the operator's `message`.
pub fn in_phase(instances: &[&str], phase: Phase, message: &str) -> AccessRequest {
    let mut request = access_request(instances);
    request.status = Some(AccessRequestStatus {
        phase,
        message: message.into(),
        ..AccessRequestStatus::default()
    });
    request
}

/// An AccessRequest for [`INSTANCE`] with uid `uid-1`, a username and the instance's host key.
pub fn provisioned_request() -> AccessRequest {
    let mut request = access_request(&[INSTANCE]);
    request.metadata.uid = Some("uid-1".into());
    request.status = Some(AccessRequestStatus {
        username: Some(USERNAME.into()),
        targets: vec![TargetStatus {
            instance_id: INSTANCE.into(),
            host_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA host".into()],
            ..TargetStatus::default()
        }],
        ..AccessRequestStatus::default()
    });
    request
}

pub fn condition(type_: &str, status: ConditionStatus, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.as_str().into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Time(Timestamp::now()),
        observed_generation: None,
    }
}

/// Unix seconds now.
pub fn now_seconds() -> u64 {
    u64::try_from(Timestamp::now().as_second()).unwrap_or_default()
}

/// A certificate for `key` signed by `ca`, valid from `after` to `before` (Unix seconds).
pub fn certify(key: &PublicKey, ca: &PrivateKey, after: u64, before: u64) -> Certificate {
    let mut builder = certificate::Builder::new_with_random_nonce(
        &mut rand_core::OsRng,
        key.key_data().clone(),
        after,
        before,
    )
    .expect("builder");
    builder.valid_principal(USERNAME).expect("principal");
    builder.sign(ca).expect("sign")
}

/// An Ed25519 key directory at `dir`.
pub fn key_dir(dir: &Path) -> KeyDir {
    KeyDir {
        dir: dir.to_owned(),
        key_type: KeyType::Ed25519,
    }
}

/// A record of issued credentials with nothing in it.
pub fn issued() -> Issued {
    Issued {
        access_request_uid: "uid-1".into(),
        credential_request: "db-cred-x".into(),
        username: USERNAME.into(),
        valid_before: 0,
        certificate: String::new(),
        certificate_sha1: None,
        host_keys: vec![],
        tunnel: None,
        sealed_secrets: vec![],
    }
}

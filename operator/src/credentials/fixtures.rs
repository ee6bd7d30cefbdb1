//! What the credentials tests share: an Active AccessRequest, CredentialRequest specs, the CA.

use std::sync::LazyLock;

use age::x25519::Identity;
use jiff::Timestamp;
use passport_crds::{
    AccessRequest, AccessRequestSpec, CredentialRequestSpec, KeyType, Phase,
    access_request::{AccessRequestStatus, Platform, TargetState, TargetStatus},
    common::Time,
};
use rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

use super::decide::{Inputs, Plan, Refusal, plan};
use crate::{aws::Account, ssh_ca::CaKeys};

pub(super) const A: &str = "i-0000000000000000a";
pub(super) const B: &str = "i-0000000000000000b";
pub(super) const W: &str = "i-0000000000000000c";
pub(super) const RSA_2048: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDu5CU3QfAQnMHxMlG4iIITdVGmqII9AYihkMwczUVmgyr+yqPd3amWVGzcpABkG3ovbSfl3UGAfDgv7rEUzZdCgnZR429KZv8LItIDLCzcUB0abJXW5a7CB0Nvh0wROsPp8HVNXqrlQ0/ENX21pTwyrbv2iIZVY5ThIOMYF+h2W+FWvrzjWqEZKPGe/7wITTqZfk5nTaEdP05XfWDN/V3gYN6OqzqAFhqUQPdN7pG/g+3CqEHPigIyVoBOTSWNSn6KZ3Lvx/lBacCQzuR68s3MQh3qJmgOXid5pFw/wRtoFXAo0egOXQd6GUjYmmpLxfdo+TN4bfSGUMPAO0Kv/ngj test";

/// The CA, generated like in production (RSA generation takes a moment: once per test binary).
pub(super) static CA: LazyLock<CaKeys> = LazyLock::new(|| CaKeys::generate().expect("generate the CA"));

pub(super) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_900_000_000 + seconds).expect("valid timestamp")
}

pub(super) fn ed25519_line() -> String {
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).expect("key");
    key.public_key().to_openssh().expect("openssh")
}

pub(super) fn sealing_key() -> String {
    Identity::generate().to_public().to_string()
}

pub(super) fn account() -> Account {
    Account {
        role_arn: "arn:aws:iam::123456789012:role/passport".into(),
        region: "eu-west-1".into(),
        external_id: Some("ext".into()),
    }
}

pub(super) fn target(id: &str, state: TargetState, platform: Platform) -> TargetStatus {
    TargetStatus {
        instance_id: id.into(),
        platform: Some(platform),
        state,
        command_id: Some("cmd".into()),
        message: String::new(),
        host_keys: vec![format!("ssh-ed25519 AAAAhostkeyof{id}")],
    }
}

/// An Active request of alice's on A and B (Linux) and W (Windows), expiring at `at(3600)`.
pub(super) fn active() -> AccessRequest {
    let mut request = AccessRequest::new(
        "r",
        AccessRequestSpec {
            account: Some("prod".into()),
            ..AccessRequestSpec::new("alice", "disk full", [A, B, W].iter().copied())
        },
    );
    request.metadata.namespace = Some("team-a".into());
    request.status = Some(AccessRequestStatus {
        phase: Phase::Active,
        username: Some("rs-5f3a9c21".into()),
        activated_at: Some(Time(at(0))),
        expires_at: Some(Time(at(3600))),
        targets: vec![
            target(A, TargetState::Ready, Platform::Linux),
            target(B, TargetState::Ready, Platform::Linux),
            target(W, TargetState::Ready, Platform::Windows),
        ],
        ..AccessRequestStatus::default()
    });
    request
}

pub(super) fn spec(requester: &str, public_key: String, key_type: KeyType) -> CredentialRequestSpec {
    CredentialRequestSpec {
        access_request: "r".into(),
        requester: requester.into(),
        public_key,
        key_type,
        sealing_key: sealing_key(),
    }
}

pub(super) fn decide(
    spec: &CredentialRequestSpec,
    request: Option<&AccessRequest>,
    now: Timestamp,
) -> Result<Plan, Refusal> {
    let account = account();
    plan(&Inputs {
        namespace: "team-a",
        name: "cr-1",
        spec,
        access_request: request,
        account: Ok(&account),
        serial: 0x0a1b_2c3d_0000_002a,
        now,
    })
}

pub(super) fn refusal(
    spec: &CredentialRequestSpec,
    request: Option<&AccessRequest>,
    now: Timestamp,
) -> Refusal {
    decide(spec, request, now).expect_err("refused")
}

//! Test objects and keys shared by every unit test of the crate: one clock, one CA, and builders for
//! the passport kinds with the values a test does not care about filled in.

use std::{collections::BTreeMap, sync::LazyLock};

use age::x25519::Identity;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use passport_crds::{
    AccessPolicy, AccessPolicySpec, AccessRequest, AccessRequestSpec, AccessReview, AccessReviewSpec,
    CredentialRequestSpec, KeyType, Phase, ReviewDecision,
    access_policy::{ApprovalRule, TargetSelector},
    access_request::{AccessRequestStatus, Platform, TargetState, TargetStatus},
    common::{Subjects, Time},
};
use rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey};

use crate::{
    account::Account,
    credentials::{Inputs, Plan, Refusal, plan},
    ssh_ca::CaKeys,
};

/// The namespace every fixture lives in.
pub const NAMESPACE: &str = "team-a";
/// The instance a fixture request names unless told otherwise.
pub const TARGET: &str = "i-0123456789abcdef0";

/// A fixed instant plus `seconds`: tests speak in offsets from "the request was created".
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid timestamp")
}

/// The CA, generated like in production (Ed25519 + RSA-3072; RSA takes a moment, so once per binary).
pub static CA: LazyLock<CaKeys> = LazyLock::new(|| CaKeys::generate().expect("generate the test CA"));

/// A second Ed25519 key: another CA in trust tests.
pub static OTHER_ED25519: LazyLock<PrivateKey> = LazyLock::new(user_ed25519);

/// A fresh Ed25519 user key (cheap).
pub fn user_ed25519() -> PrivateKey {
    PrivateKey::random(&mut OsRng, Algorithm::Ed25519).expect("generate an Ed25519 key")
}

pub fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NAMESPACE.into()),
        uid: Some(format!("uid-{name}")),
        creation_timestamp: Some(Time(at(0))),
        ..ObjectMeta::default()
    }
}

pub fn subjects(users: &[&str], groups: &[&str]) -> Subjects {
    Subjects {
        users: users.iter().map(|s| (*s).to_owned()).collect(),
        groups: groups.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// alice's request for [`TARGET`], created at `at(0)`, with no status yet.
pub fn request(name: &str) -> AccessRequest {
    AccessRequest {
        metadata: meta(name),
        spec: AccessRequestSpec::new("alice", "incident", [TARGET]),
        status: None,
    }
}

/// A policy letting alice and the developers group request [`TARGET`] for up to 4h, with two
/// approvals from carol, dave or alice (never counted for her own requests), no auto-approval.
pub fn policy(name: &str) -> AccessPolicy {
    AccessPolicy {
        metadata: meta(name),
        spec: AccessPolicySpec {
            requesters: subjects(&["alice"], &["developers"]),
            targets: TargetSelector {
                instance_ids: vec![TARGET.into()],
                tags: BTreeMap::new(),
            },
            max_duration: "4h".into(),
            approval: ApprovalRule {
                required: 2,
                approvers: subjects(&["carol", "dave", "alice"], &[]),
            },
            auto_approve: Vec::new(),
            require_ticket: false,
            pending_timeout: "30m".into(),
            gitops_appliers: Subjects::default(),
            default_account: None,
        },
        status: None,
    }
}

/// `reviewer`'s review of request `req`, made at `at(1)`.
pub fn review(reviewer: &str, decision: ReviewDecision) -> AccessReview {
    let mut metadata = meta(&format!("{reviewer}-review"));
    metadata.creation_timestamp = Some(Time(at(1)));
    AccessReview {
        metadata,
        spec: AccessReviewSpec {
            access_request: "req".into(),
            access_request_uid: None,
            duration: None,
            decision,
            reviewer: reviewer.into(),
            comment: Some("because".into()),
        },
        status: None,
    }
}

/// A 2048-bit RSA user key (generation takes a moment: once per binary).
pub static USER_RSA: LazyLock<PrivateKey> =
    LazyLock::new(|| crate::ssh_ca::generate_rsa(2048).expect("generate an RSA key"));

// CredentialRequests: an Active request on two Linux targets and a Windows one, and its decision.

pub const A: &str = "i-0000000000000000a";
pub const B: &str = "i-0000000000000000b";
pub const W: &str = "i-0000000000000000c";
pub const RSA_2048: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDu5CU3QfAQnMHxMlG4iIITdVGmqII9AYihkMwczUVmgyr+yqPd3amWVGzcpABkG3ovbSfl3UGAfDgv7rEUzZdCgnZR429KZv8LItIDLCzcUB0abJXW5a7CB0Nvh0wROsPp8HVNXqrlQ0/ENX21pTwyrbv2iIZVY5ThIOMYF+h2W+FWvrzjWqEZKPGe/7wITTqZfk5nTaEdP05XfWDN/V3gYN6OqzqAFhqUQPdN7pG/g+3CqEHPigIyVoBOTSWNSn6KZ3Lvx/lBacCQzuR68s3MQh3qJmgOXid5pFw/wRtoFXAo0egOXQd6GUjYmmpLxfdo+TN4bfSGUMPAO0Kv/ngj test";

pub fn ed25519_line() -> String {
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).expect("key");
    key.public_key().to_openssh().expect("openssh")
}

pub fn sealing_key() -> String {
    Identity::generate().to_public().to_string()
}

pub fn account() -> Account {
    Account {
        role_arn: "arn:aws:iam::123456789012:role/passport".into(),
        region: "eu-west-1".into(),
        external_id: Some("ext".into()),
    }
}

pub fn target(id: &str, state: TargetState, platform: Platform) -> TargetStatus {
    TargetStatus {
        instance_id: id.into(),
        platform: Some(platform),
        state,
        command_id: Some("cmd".into()),
        message: String::new(),
        host_keys: vec![format!("ssh-ed25519 AAAAhostkeyof{id}")],
        ..TargetStatus::default()
    }
}

/// An Active request of alice's on A and B (Linux) and W (Windows), expiring at `at(3600)`.
pub fn active() -> AccessRequest {
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

pub fn spec(requester: &str, public_key: String, key_type: KeyType) -> CredentialRequestSpec {
    CredentialRequestSpec {
        access_request: "r".into(),
        requester: requester.into(),
        public_key,
        key_type,
        sealing_key: sealing_key(),
    }
}

pub fn decide(
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

pub fn refusal(spec: &CredentialRequestSpec, request: Option<&AccessRequest>, now: Timestamp) -> Refusal {
    decide(spec, request, now).expect_err("refused")
}

//! Issue or refuse, the status, and the cleanup deadline, without a server.

use std::{sync::LazyLock, time::Duration};

use age::x25519::Identity;
use jiff::{SignedDuration, Timestamp};
use passport_crds::{
    AccessRequest, AccessRequestSpec, CredentialRequestSpec, KeyType, Phase,
    access_request::{AccessRequestStatus, Platform, Target, TargetState, TargetStatus},
    common::{Time, condition_types::ISSUED},
};
use rand_core::OsRng;
use ssh_key::{Algorithm, Certificate, PrivateKey};

use super::{decide::*, status, *};
use crate::{
    aws::{Account, SessionCredentials},
    ssh_ca::CaKeys,
};

const A: &str = "i-0000000000000000a";
const B: &str = "i-0000000000000000b";
const W: &str = "i-0000000000000000c";
const RSA_2048: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDu5CU3QfAQnMHxMlG4iIITdVGmqII9AYihkMwczUVmgyr+yqPd3amWVGzcpABkG3ovbSfl3UGAfDgv7rEUzZdCgnZR429KZv8LItIDLCzcUB0abJXW5a7CB0Nvh0wROsPp8HVNXqrlQ0/ENX21pTwyrbv2iIZVY5ThIOMYF+h2W+FWvrzjWqEZKPGe/7wITTqZfk5nTaEdP05XfWDN/V3gYN6OqzqAFhqUQPdN7pG/g+3CqEHPigIyVoBOTSWNSn6KZ3Lvx/lBacCQzuR68s3MQh3qJmgOXid5pFw/wRtoFXAo0egOXQd6GUjYmmpLxfdo+TN4bfSGUMPAO0Kv/ngj test";

/// The CA, generated like in production (RSA generation takes a moment: once per test binary).
static CA: LazyLock<CaKeys> = LazyLock::new(|| CaKeys::generate().expect("generate the CA"));

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_900_000_000 + seconds).expect("valid timestamp")
}

fn ed25519_line() -> String {
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).expect("key");
    key.public_key().to_openssh().expect("openssh")
}

fn sealing_key() -> String {
    Identity::generate().to_public().to_string()
}

fn account() -> Account {
    Account {
        role_arn: "arn:aws:iam::123456789012:role/passport".into(),
        region: "eu-west-1".into(),
        external_id: Some("ext".into()),
    }
}

fn target(id: &str, state: TargetState, platform: Platform) -> TargetStatus {
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
fn active() -> AccessRequest {
    let mut request = AccessRequest::new(
        "r",
        AccessRequestSpec {
            requester: "alice".into(),
            reason: "disk full".into(),
            ticket: None,
            duration: "1h".into(),
            account: Some("prod".into()),
            source_cidrs: None,
            targets: [A, B, W]
                .iter()
                .map(|id| Target {
                    instance_id: (*id).into(),
                })
                .collect(),
            completed: false,
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

fn spec(requester: &str, public_key: String, key_type: KeyType) -> CredentialRequestSpec {
    CredentialRequestSpec {
        access_request: "r".into(),
        requester: requester.into(),
        public_key,
        key_type,
        sealing_key: sealing_key(),
    }
}

fn decide(
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

fn refusal(spec: &CredentialRequestSpec, request: Option<&AccessRequest>, now: Timestamp) -> Refusal {
    decide(spec, request, now).expect_err("refused")
}

#[test]
fn plans_for_the_requester_of_an_active_request() {
    let request = active();
    let plan = decide(
        &spec("alice", ed25519_line(), KeyType::Ed25519),
        Some(&request),
        at(60),
    )
    .expect("plan");
    assert_eq!(plan.username, "rs-5f3a9c21");
    assert_eq!(plan.key_id, format!("team-a/cr-1#{}", 0x0a1b_2c3d_0000_002a_u64));
    assert_eq!(plan.expires_at, at(3600));
    assert_eq!(plan.instance_ids, [A, B, W]);
    assert_eq!(plan.windows_instances, [W]);
    assert_eq!(plan.host_keys.len(), 3);
    assert_eq!(plan.host_keys[0].instance_id, A);
    assert_eq!(
        plan.host_keys[0].host_keys,
        [format!("ssh-ed25519 AAAAhostkeyof{A}")]
    );
    assert_eq!(plan.tunnel.region, "eu-west-1");
    assert_eq!(plan.tunnel.ssh_document, "AWS-StartSSHSession");
    assert_eq!(
        plan.tunnel.port_forwarding_document,
        "AWS-StartPortForwardingSession"
    );
    assert_eq!(plan.session.name, "passport-rs-5f3a9c21-0a1b2c3d");
    assert_eq!(plan.session.duration, Duration::from_secs(3540));
    assert!(
        plan.session
            .policy
            .contains(&format!("arn:aws:ec2:eu-west-1:123456789012:instance/{W}"))
    );
    assert!(
        plan.session
            .policy
            .contains("\"aws:CurrentTime\":\"2030-03-17T18:46:40Z\"")
    );
}

#[test]
fn only_ready_targets_are_in_scope() {
    let mut request = active();
    let status = request.status.as_mut().expect("status");
    status.targets[1].state = TargetState::Failed;
    status.targets[2].state = TargetState::Removed;
    let plan = decide(
        &spec("alice", ed25519_line(), KeyType::Ed25519),
        Some(&request),
        at(60),
    )
    .expect("plan");
    assert_eq!(plan.instance_ids, [A]);
    assert!(plan.windows_instances.is_empty());
    assert!(!plan.session.policy.contains(B) && !plan.session.policy.contains(W));
}

#[test]
fn certificates_name_only_the_user_and_end_by_expiry() {
    let request = active();
    let public_key = ed25519_line();
    let plan = decide(
        &spec("alice", public_key.clone(), KeyType::Ed25519),
        Some(&request),
        at(60),
    )
    .expect("plan");
    let now = at(60);
    let issued = CA
        .sign(&plan.certificate_request(&public_key, now, DEFAULT_CERTIFICATE_TTL))
        .expect("sign");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].algorithm, "ssh-ed25519");
    let cert = Certificate::from_openssh(&issued[0].certificate).expect("certificate");
    assert_eq!(cert.valid_principals(), ["rs-5f3a9c21"]);
    assert_eq!(cert.key_id(), plan.key_id);
    assert_eq!(cert.serial(), plan.serial);
    assert_eq!(issued[0].valid_before, at(60 + 300));

    // Near the end of the request the certificate ends with it.
    let late = at(3500);
    let plan = decide(
        &spec("alice", public_key.clone(), KeyType::Ed25519),
        Some(&request),
        late,
    )
    .expect("plan");
    let issued = CA
        .sign(&plan.certificate_request(&public_key, late, DEFAULT_CERTIFICATE_TTL))
        .expect("sign");
    assert_eq!(issued[0].valid_before, at(3600));
    assert_eq!(plan.session.duration, policy::MIN_SESSION);
}

#[test]
fn rsa_keys_get_both_sha2_certificates() {
    let request = active();
    let spec = spec("alice", RSA_2048.into(), KeyType::Rsa);
    let plan = decide(&spec, Some(&request), at(60)).expect("plan");
    let issued = CA
        .sign(&plan.certificate_request(&spec.public_key, at(60), DEFAULT_CERTIFICATE_TTL))
        .expect("sign");
    let algorithms: Vec<&str> = issued.iter().map(|c| c.algorithm.as_str()).collect();
    assert_eq!(algorithms, ["rsa-sha2-512", "rsa-sha2-256"]);
}

#[test]
fn refusals_name_the_problem_and_the_fix() {
    let request = active();
    let alice = spec("alice", ed25519_line(), KeyType::Ed25519);
    let now = at(60);

    let missing = refusal(&alice, None, now);
    assert_eq!(missing.reason, Reason::RequestNotFound);
    assert!(
        missing
            .message
            .starts_with("spec.accessRequest r does not exist in namespace team-a")
    );

    let bob = refusal(
        &spec("bob", ed25519_line(), KeyType::Ed25519),
        Some(&request),
        now,
    );
    assert_eq!(bob.reason, Reason::RequesterMismatch);
    assert!(
        bob.message
            .starts_with("spec.requester bob is not the requester of AccessRequest r"),
        "{}",
        bob.message
    );

    let expired = refusal(&alice, Some(&request), at(3600));
    assert_eq!(expired.reason, Reason::Expired);
    assert!(
        expired.message.contains("create a new AccessRequest"),
        "{}",
        expired.message
    );
    assert_eq!(refusal(&alice, Some(&request), at(3599)).reason, Reason::Expired);

    let garbage = spec("alice", "ssh-ed25519 AAAAnot-a-key".into(), KeyType::Ed25519);
    let invalid = refusal(&garbage, Some(&request), now);
    assert_eq!(invalid.reason, Reason::InvalidPublicKey);
    assert!(
        invalid
            .message
            .starts_with("spec.publicKey is not an OpenSSH public key line")
    );

    let mismatch = refusal(
        &spec("alice", RSA_2048.into(), KeyType::Ed25519),
        Some(&request),
        now,
    );
    assert_eq!(mismatch.reason, Reason::KeyTypeMismatch);
    assert_eq!(
        mismatch.message,
        "spec.keyType is ed25519 but spec.publicKey is an ssh-rsa key: set spec.keyType to rsa"
    );

    let mut bad_seal = alice.clone();
    bad_seal.sealing_key = "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq".into();
    assert_eq!(
        refusal(&bad_seal, Some(&request), now).reason,
        Reason::InvalidSealingKey
    );

    let no_account = plan(&Inputs {
        namespace: "team-a",
        name: "cr-1",
        spec: &alice,
        access_request: Some(&request),
        account: Err("AwsAccount \"prod\" does not exist"),
        serial: 1,
        now,
    })
    .expect_err("refused");
    assert_eq!(no_account.reason, Reason::AccountUnavailable);
    assert!(no_account.message.contains("AwsAccount \"prod\" does not exist"));
}

#[test]
fn requests_that_are_not_active_say_their_phase_and_what_to_do() {
    let alice = spec("alice", ed25519_line(), KeyType::Ed25519);
    let cases = [
        (Phase::Pending, "AccessRequest r is Pending: wait for approval"),
        (
            Phase::Provisioning,
            "AccessRequest r is Provisioning: wait until it is Active",
        ),
        (Phase::Revoking, "AccessRequest r is Revoking"),
        (
            Phase::Completed,
            "AccessRequest r is Completed: create a new AccessRequest",
        ),
        (
            Phase::Expired,
            "AccessRequest r is Expired: create a new AccessRequest",
        ),
        (
            Phase::Denied,
            "AccessRequest r is Denied: create a new AccessRequest",
        ),
        (
            Phase::Failed,
            "AccessRequest r is Failed: create a new AccessRequest",
        ),
    ];
    for (phase, expected) in cases {
        let mut request = active();
        request.status.as_mut().expect("status").phase = phase;
        let refused = refusal(&alice, Some(&request), at(60));
        assert_eq!(refused.reason, Reason::RequestNotActive, "{phase:?}");
        assert!(
            refused.message.starts_with(expected),
            "{phase:?}: {}",
            refused.message
        );
    }
    let mut completing = active();
    completing.spec.completed = true;
    let refused = refusal(&alice, Some(&completing), at(60));
    assert!(
        refused.message.contains("is being completed"),
        "{}",
        refused.message
    );
    let mut deleting = active();
    deleting.metadata.deletion_timestamp = Some(Time(at(30)));
    let refused = refusal(&alice, Some(&deleting), at(60));
    assert!(
        refused.message.contains("is being deleted"),
        "{}",
        refused.message
    );
}

#[test]
fn too_many_instances_for_a_session_policy_are_refused() {
    let mut request = active();
    let ids: Vec<String> = (0..50).map(|i| format!("i-{i:017x}")).collect();
    request.spec.targets = ids
        .iter()
        .map(|id| Target {
            instance_id: id.clone(),
        })
        .collect();
    request.status.as_mut().expect("status").targets = ids
        .iter()
        .map(|id| target(id, TargetState::Ready, Platform::Linux))
        .collect();
    let refused = refusal(
        &spec("alice", ed25519_line(), KeyType::Ed25519),
        Some(&request),
        at(60),
    );
    assert_eq!(refused.reason, Reason::TooManyTargets);
    assert!(
        refused.message.contains("split the access"),
        "{}",
        refused.message
    );
}

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
    assert_eq!(session.expiration, "2030-03-17T18:46:40Z", "clamped to expiresAt");
    assert_eq!(
        status::aws_session(&plan, &credentials(at(1000))).expiration,
        "2030-03-17T18:03:20Z"
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
    let request = active();
    let now = Timestamp::now();
    let mut request = request;
    let status = request.status.as_mut().expect("status");
    status.expires_at = Some(Time(now + SignedDuration::from_hours(1)));
    let public_key = ed25519_line();
    let plan = decide(
        &spec("alice", public_key.clone(), KeyType::Ed25519),
        Some(&request),
        now,
    )
    .expect("plan");
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

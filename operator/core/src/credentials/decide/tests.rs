//! Issue or refuse, without a server.

use passport_crds::{
    KeyType, Phase,
    access_request::{Platform, Target, TargetState},
    common::Time,
};
use ssh_key::Certificate;

use crate::{credentials::*, fixtures::*};

/// The UID of the AccessRequest of [`active`].
pub(crate) const AR_UID: &str = "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";

/// The fixture's Active AccessRequest, with the UID the API server gives every object and the
/// approval the operator records: approved at 0 for its 1h, activated at 0, expiring at 3600.
pub(crate) fn active() -> passport_crds::AccessRequest {
    let mut request = crate::fixtures::active();
    request.metadata.uid = Some(AR_UID.into());
    let status = request.status.as_mut().expect("status");
    status.approved_at = Some(Time(at(0)));
    status.approved_duration = Some("1h".into());
    passport_crds::conditions::set(
        &mut status.conditions,
        passport_crds::conditions::Update::new(passport_crds::conditions::types::APPROVED, true, "Approved"),
        None,
        at(0),
    );
    request
}

/// alice's Ed25519 key and the plan for it on `request`, at 60.
pub(crate) fn alice_ed25519_plan(request: &passport_crds::AccessRequest) -> (String, Plan) {
    let public_key = ed25519_line();
    let plan = decide(
        &spec("alice", public_key.clone(), KeyType::Ed25519),
        Some(request),
        at(60),
    )
    .expect("plan");
    (public_key, plan)
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
    assert_eq!(
        plan.key_id,
        format!("team-a/cr-1#{} uid={AR_UID}", 0x0a1b_2c3d_0000_002a_u64)
    );
    assert_eq!(plan.principal, format!("passport-{AR_UID}"));
    assert_eq!(plan.source_addresses, None);
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
    assert_eq!(plan.tunnel.ssh_document, "Passport-SSH");
    assert_eq!(plan.tunnel.port_forwarding_document, "Passport-RDP");
    assert_eq!(plan.session.name, "passport-4f1c2d3e-rs-5f3a9c21-0a1b2c3d");
    assert_eq!(
        plan.session.duration,
        policy::SESSION_DURATION,
        "always the shortest STS session"
    );
    assert!(
        plan.session
            .policy
            .contains(&format!("arn:aws:ec2:eu-west-1:123456789012:instance/{W}"))
    );
    assert!(
        plan.session
            .policy
            .contains(&format!("\"aws:CurrentTime\":\"{}\"", rfc3339(at(3600))))
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
fn certificates_name_only_the_request_and_end_by_expiry() {
    let request = active();
    let (public_key, plan) = alice_ed25519_plan(&request);
    let now = at(60);
    let issued = CA
        .sign(&plan.certificate_request(&public_key, now, DEFAULT_CERTIFICATE_TTL))
        .expect("sign");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].algorithm, "ssh-ed25519");
    let cert = Certificate::from_openssh(&issued[0].certificate).expect("certificate");
    // The request's own principal, not the OS user every request of alice shares.
    assert_eq!(cert.valid_principals(), [format!("passport-{AR_UID}")]);
    assert_eq!(cert.key_id(), plan.key_id);
    assert!(cert.key_id().contains(AR_UID), "{}", cert.key_id());
    assert!(cert.critical_options().is_empty());
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
    assert_eq!(plan.session.duration, policy::SESSION_DURATION);
}

#[test]
fn rsa_keys_get_both_sha2_certificates_then_a_sha1_one() {
    let request = active();
    let spec = spec("alice", RSA_2048.into(), KeyType::Rsa);
    let plan = decide(&spec, Some(&request), at(60)).expect("plan");
    let issued = CA
        .sign(&plan.certificate_request(&spec.public_key, at(60), DEFAULT_CERTIFICATE_TTL))
        .expect("sign");
    let algorithms: Vec<&str> = issued.iter().map(|c| c.algorithm.as_str()).collect();
    assert_eq!(algorithms, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
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
        (
            Phase::Pending,
            "AccessRequest r is Pending: it is not approved yet; follow it",
        ),
        (
            Phase::Provisioning,
            "AccessRequest r is Provisioning: the user is still being created on its instances; wait",
        ),
        (
            Phase::Revoking,
            "AccessRequest r is Revoking: access is being revoked; request access again",
        ),
        (
            Phase::Completed,
            "AccessRequest r is Completed: access has ended; request access again",
        ),
        (
            Phase::Expired,
            "AccessRequest r is Expired: access has ended; request access again",
        ),
        (
            Phase::Denied,
            "AccessRequest r is Denied: it was denied; request access again",
        ),
        (
            Phase::Failed,
            "AccessRequest r is Failed: it could not be provisioned; request access again",
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

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[test]
fn source_cidrs_restrict_certificates_to_them_and_the_instance_loopback() {
    let mut request = active();
    request.spec.source_cidrs = Some(vec!["203.0.113.7/32".into(), "2001:db8::1/64".into()]);
    let (public_key, plan) = alice_ed25519_plan(&request);
    let expected = ["203.0.113.7/32", "2001:db8::/64", "127.0.0.1/32", "::1/128"];
    assert_eq!(
        plan.source_addresses.as_deref(),
        Some(&expected.map(String::from)[..])
    );
    let issued = CA
        .sign(&plan.certificate_request(&public_key, at(60), DEFAULT_CERTIFICATE_TTL))
        .expect("sign");
    let cert = Certificate::from_openssh(&issued[0].certificate).expect("certificate");
    let options: Vec<(&str, &str)> = cert
        .critical_options()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        options,
        [(
            "source-address",
            "203.0.113.7/32,2001:db8::/64,127.0.0.1/32,::1/128"
        )]
    );

    request.spec.source_cidrs = Some(vec!["203.0.113.7/33".into()]);
    let refused = decide(
        &spec("alice", public_key, KeyType::Ed25519),
        Some(&request),
        at(60),
    )
    .expect_err("refused");
    assert_eq!(refused.reason, Reason::InvalidSourceCidrs);
    assert!(refused.message.contains("203.0.113.7/33"), "{}", refused.message);
}

#[test]
fn a_request_without_uid_is_refused() {
    let mut request = active();
    request.metadata.uid = None;
    let refused = decide(
        &spec("alice", ed25519_line(), KeyType::Ed25519),
        Some(&request),
        at(60),
    )
    .expect_err("refused");
    assert_eq!(refused.reason, Reason::RequestNotFound);
}

/// A status that does not agree with the spec, or lacks what an approved request has: refused,
/// naming the field and the fix.
#[test]
fn a_status_that_disagrees_with_the_spec_is_refused() {
    let alice = spec("alice", ed25519_line(), KeyType::Ed25519);
    let now = at(60);
    let mismatch = |change: &dyn Fn(&mut passport_crds::AccessRequest), says: &str| {
        let mut request = active();
        change(&mut request);
        let refused = refusal(&alice, Some(&request), now);
        assert_eq!(
            refused.reason,
            Reason::StatusMismatch,
            "{says}: {}",
            refused.message
        );
        assert!(
            refused.message.starts_with(&format!("AccessRequest r {says}")),
            "{says}: {}",
            refused.message
        );
        assert!(
            refused.message.contains("create a new AccessRequest")
                && refused.message.contains("--show-managed-fields"),
            "{}",
            refused.message
        );
    };
    mismatch(
        &|r| r.status.as_mut().expect("status").username = None,
        "has no status.username",
    );
    mismatch(
        &|r| r.status.as_mut().expect("status").approved_at = None,
        "is Active but has no status.approvedAt",
    );
    mismatch(
        &|r| r.status.as_mut().expect("status").conditions.clear(),
        "is Active but its Approved condition is not True",
    );
    mismatch(
        &|r| r.status.as_mut().expect("status").activated_at = None,
        "is Active but has no status.activatedAt",
    );
    mismatch(
        &|r| r.status.as_mut().expect("status").approved_duration = None,
        "is Active but has no status.approvedDuration",
    );
    // A day's access written into a 1h request's status.
    mismatch(
        &|r| r.status.as_mut().expect("status").expires_at = Some(Time(at(86_400))),
        "has status.expiresAt",
    );
    // The approved duration grown in the status beyond what the spec asks.
    mismatch(
        &|r| {
            let s = r.status.as_mut().expect("status");
            s.approved_duration = Some("12h".into());
            s.expires_at = Some(Time(at(43_200)));
        },
        "has status.expiresAt",
    );
    // An extension asked for (spec.duration grown) but not approved: expiresAt may not follow it.
    mismatch(
        &|r| {
            r.spec.duration = "2h".into();
            r.status.as_mut().expect("status").expires_at = Some(Time(at(7200)));
        },
        "has status.expiresAt",
    );
    // A Ready target the spec never named.
    mismatch(
        &|r| {
            r.status.as_mut().expect("status").targets.push(target(
                "i-0eeeeeeeeeeeeeee1",
                TargetState::Ready,
                Platform::Linux,
            ));
        },
        "lists target i-0eeeeeeeeeeeeeee1 in status.targets",
    );
}

#[test]
fn an_approved_extension_and_an_earlier_expiry_are_fine() {
    let alice = spec("alice", ed25519_line(), KeyType::Ed25519);
    let mut request = active();
    request.spec.duration = "2h".into();
    let status = request.status.as_mut().expect("status");
    status.approved_duration = Some("2h".into());
    status.expires_at = Some(Time(at(7200)));
    assert_eq!(
        decide(&alice, Some(&request), at(60)).expect("plan").expires_at,
        at(7200)
    );
    // Extension asked for, not approved yet: the approved hour stands.
    let mut waiting = active();
    waiting.spec.duration = "2h".into();
    assert_eq!(
        decide(&alice, Some(&waiting), at(60)).expect("plan").expires_at,
        at(3600)
    );
}

#[test]
fn targets_not_ready_or_not_named_get_nothing() {
    let alice = spec("alice", ed25519_line(), KeyType::Ed25519);
    let mut request = active();
    // The spec names a target the status has not reached yet: not in scope, not a mismatch.
    request.spec.targets.push(Target {
        instance_id: "i-0ddddddddddddddd1".into(),
    });
    let plan = decide(&alice, Some(&request), at(60)).expect("plan");
    assert_eq!(plan.instance_ids, [A, B, W]);
}

#[test]
fn the_username_must_be_the_one_pinned_for_the_requester() {
    let request = active();
    // The fixture's user, as the operator's key derives it for alice.
    assert!(check_pinned_username(&request, "rs-5f3a9c21").is_ok());
    let mut domain = active();
    domain.status.as_mut().expect("status").username = Some("rs-5f3a9c21-dc1".into());
    assert!(check_pinned_username(&domain, "rs-5f3a9c21").is_ok());
    let refused = check_pinned_username(&request, "rs-0badc0de").expect_err("someone else's user");
    assert_eq!(refused.reason, Reason::StatusMismatch);
    assert!(
        refused.message.starts_with(
            "AccessRequest r has status.username rs-5f3a9c21, which is not the user pinned for its \
             spec.requester alice"
        ),
        "{}",
        refused.message
    );
    let mut none = active();
    none.status.as_mut().expect("status").username = None;
    assert_eq!(
        check_pinned_username(&none, "rs-5f3a9c21")
            .expect_err("none")
            .reason,
        Reason::StatusMismatch
    );
}

//! CredentialRequests on real parts: the operator certifies a workstation key that logs in to an
//! OpenSSH instance, seals a scoped AWS session (moto issues it; the recorded AssumeRole shows its
//! policy) to an age key only the test holds, and refuses requests for someone else's or an inactive
//! AccessRequest with its reason.

pub(crate) mod bench;
mod support;
pub(crate) mod workstation;

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context, Result, ensure};
use jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use passport_crds::{
    CredentialRequest, KeyType, Phase,
    conditions::ConditionStatus,
    sealed::{AWS_SESSION, AwsSession},
};
use passport_tests::{fixtures, instance::Instance, ssh::request_principal, wait::eventually};

use crate::scenario::{on_instance, on_shared_stack};
use crate::{E2e, benchmark, scenario::Scenario, test};
use support::{
    caller_arn, check_logbook, check_logbook_record, check_recorded_policy, create, issued_condition,
    issued_status, wait_decided,
};
use workstation::{Workstation, field, principals, valid_to};

const PROVISION_TIMEOUT: Duration = Duration::from_secs(60);
const ISSUE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new RoleBinding may take to reach the apiserver's authorizer (its cache: no watch).
const AUTHORIZATION: Duration = Duration::from_secs(30);

pub fn trials() -> Vec<E2e> {
    vec![
        on_instance(
            "credentials::issued_credentials_work_and_are_scoped",
            "creds",
            |s, instance| Box::pin(issued_credentials(s, instance)),
        ),
        test("credentials::refusals_say_why", |env| async move {
            // Nobody is auto-approved: alice's requests stay Pending.
            let s = on_shared_stack(&env, "refuse", &["dave"], &["i-0ccccccccccccccc3"]).await?;
            refusals(&s).await
        }),
        benchmark(on_instance(
            "credentials::bench_issuance",
            "credbench",
            |s, instance| Box::pin(async move { bench::bench_issuance(s, instance.id()).await.map(drop) }),
        )),
    ]
}

async fn issued_credentials(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    s.request("r", "alice", "1h", &[instance.id()])?;
    let active = s.wait_phase("r", Phase::Active, PROVISION_TIMEOUT).await?;
    let ar_status = active.status.clone().context("no status")?;
    let username = ar_status.username.clone().context("no username")?;
    let expires_at = ar_status.expires_at.clone().context("no expiresAt")?.0;
    s.bind("passport-requester", "Group", "developers")?;
    let alice: Api<CredentialRequest> = Api::namespaced(s.plane.user_client("alice").await?, &s.namespace);

    // Ed25519.
    let workstation = Workstation::new(KeyType::Ed25519).await?;
    let spec = workstation.spec("r", "alice", KeyType::Ed25519)?;
    // A fresh RoleBinding may take a moment to be authorized; retry the first create.
    eventually(AUTHORIZATION, || create(&alice, "alice-ed25519", spec.clone())).await?;
    let issued = wait_decided(s, &alice, "alice-ed25519").await?;
    let status = issued_status(&issued)?;
    ensure!(
        status.username.as_deref() == Some(username.as_str()),
        "{status:?}"
    );
    let algorithms: Vec<&str> = status.certificates.iter().map(|c| c.algorithm.as_str()).collect();
    ensure!(algorithms == ["ssh-ed25519"], "{algorithms:?}");
    let valid_before = status.valid_before.clone().context("no validBefore")?.0;
    ensure!(
        valid_before <= expires_at,
        "validBefore {valid_before} past expiresAt {expires_at}"
    );
    let tunnel = status.tunnel.clone().context("no tunnel")?;
    ensure!(
        tunnel.region == "us-east-1"
            && tunnel.ssh_document == "Passport-SSH"
            && tunnel.port_forwarding_document == "Passport-RDP",
        "{tunnel:?}"
    );
    ensure!(
        status.host_keys.len() == 1 && status.host_keys[0].instance_id == instance.id(),
        "{status:?}"
    );
    let host_keys = status.host_keys[0].host_keys.clone();
    let expected: BTreeSet<String> = instance
        .host_keys()
        .iter()
        .map(|k| k.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    let reported: BTreeSet<String> = host_keys
        .iter()
        .map(|k| k.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    ensure!(
        expected == reported,
        "host keys {reported:?}, instance has {expected:?}"
    );

    let whoami = workstation
        .ssh(
            instance,
            &username,
            &status.certificates[0].certificate,
            &host_keys,
        )
        .await?;
    ensure!(whoami == username, "logged in as {whoami}, not {username}");

    let described = workstation.describe(&status.certificates[0].certificate).await?;
    let principals = principals(&described);
    let principal = request_principal(&active.uid().context("no uid")?);
    ensure!(
        principals == [principal.as_str()],
        "principals {principals:?}:\n{described}"
    );
    let until = valid_to(&described)?;
    ensure!(
        until <= expires_at && until == valid_before,
        "certificate valid to {until}, validBefore {valid_before}, expiresAt {expires_at}"
    );
    ensure!(
        described.contains(&format!("Key ID: \"{}/alice-ed25519#", s.namespace)),
        "{described}"
    );
    let serial: u64 = field(&described, "Serial:")
        .context("no serial")?
        .parse()
        .context("serial")?;

    // The sealed AWS session: only the workstation can read it, and it is the scoped one.
    let sealed: Vec<_> = status
        .sealed_secrets
        .iter()
        .filter(|s| s.kind == AWS_SESSION)
        .collect();
    ensure!(sealed.len() == 1, "{:?}", status.sealed_secrets);
    ensure!(
        age::decrypt(
            &age::x25519::Identity::generate(),
            sealed[0].ciphertext.as_bytes()
        )
        .is_err(),
        "another identity unsealed the session"
    );
    let session: AwsSession = serde_json::from_slice(&workstation.unseal(&sealed[0].ciphertext)?)?;
    ensure!(session.region == "us-east-1", "{session:?}");
    let expiration: Timestamp = session.expiration.parse()?;
    ensure!(
        expiration <= expires_at,
        "session expires {expiration}, after {expires_at}"
    );
    let uid = active.metadata.uid.clone().context("no uid")?;
    let session_name = format!("passport-{}-{username}-{:08x}", &uid[..8], serial >> 32);
    let caller = caller_arn(s, &session).await?;
    ensure!(
        caller == format!("arn:aws:sts::123456789012:assumed-role/passport-e2e/{session_name}"),
        "the unsealed credentials are {caller}, not the scoped session {session_name}"
    );
    check_recorded_policy(s, instance, &session_name, expires_at, &session).await?;
    check_logbook(s, &session_name, serial, &session).await?;
    check_logbook_record(s, "r", serial, instance.id()).await?;

    // The same key again: the same certificate, no new AssumeRole, no new logbook entry. (The
    // emulator is shared with other trials: only this request's role sessions count.)
    let prefix = format!("passport-{}-", &uid[..8]);
    let own_calls = || async {
        let calls = s.emulator.assumed_roles().await?;
        anyhow::Ok(
            calls
                .iter()
                .filter(|c| {
                    c["RoleSessionName"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&prefix))
                })
                .count(),
        )
    };
    let calls = own_calls().await?;
    create(&alice, "alice-ed25519-again", spec.clone()).await?;
    let again = wait_decided(s, &alice, "alice-ed25519-again").await?;
    let reused = issued_status(&again)?;
    let said = issued_condition(&again).context("undecided")?;
    ensure!(
        said.reason == "Reused" && said.message.contains(&format!("serial {serial}")),
        "{}: {}",
        said.reason,
        said.message
    );
    ensure!(
        reused.certificates == status.certificates,
        "a reused certificate differs"
    );
    ensure!(
        own_calls().await? == calls,
        "a reused certificate cost an AssumeRole"
    );
    let sealed = reused
        .sealed_secrets
        .iter()
        .find(|s| s.kind == AWS_SESSION)
        .context("no sealed session")?;
    let unsealed: AwsSession = serde_json::from_slice(&workstation.unseal(&sealed.ciphertext)?)?;
    ensure!(
        unsealed.access_key_id == session.access_key_id,
        "the reused AWS session is another one"
    );
    let record = s.requests.get("r").await?.status.and_then(|st| st.logbook);
    let issues = record
        .as_ref()
        .and_then(|r| r.credentials.as_ref())
        .map(|c| c.count);
    ensure!(
        issues == Some(1),
        "logbook counts {issues:?} issues after a reuse"
    );

    // RSA: both SHA-2 certificates, each logs in; then the SHA-1 (ssh-rsa) one for old servers,
    // which this modern sshd refuses by default (see sha1_certs for a server that takes it).
    let rsa = Workstation::new(KeyType::Rsa).await?;
    create(&alice, "alice-rsa", rsa.spec("r", "alice", KeyType::Rsa)?).await?;
    let status = issued_status(&wait_decided(s, &alice, "alice-rsa").await?)?;
    let algorithms: Vec<&str> = status.certificates.iter().map(|c| c.algorithm.as_str()).collect();
    ensure!(
        algorithms == ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        "{algorithms:?}"
    );
    for certificate in &status.certificates {
        let described = rsa.describe(&certificate.certificate).await?;
        ensure!(
            described.contains(&format!("(using {})", certificate.algorithm)),
            "{}: {described}",
            certificate.algorithm
        );
        if certificate.algorithm == "ssh-rsa" {
            let refused = rsa
                .ssh(instance, &username, &certificate.certificate, &host_keys)
                .await;
            ensure!(
                refused.is_err(),
                "a default sshd took an ssh-rsa (SHA-1) signed certificate"
            );
            continue;
        }
        let whoami = rsa
            .ssh(instance, &username, &certificate.certificate, &host_keys)
            .await?;
        ensure!(
            whoami == username,
            "{}: logged in as {whoami}",
            certificate.algorithm
        );
    }

    // Decided once: nothing rewrites a decided status.
    let before = alice.get("alice-ed25519").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = alice.get("alice-ed25519").await?;
    ensure!(
        before.status == after.status,
        "the status of a decided request changed"
    );
    // What makes it so even with a stale cache: the operator's status write carries the
    // resourceVersion it decided on, and the apiserver refuses it once the object has moved on.
    let stale = after
        .metadata
        .resource_version
        .clone()
        .context("no resourceVersion")?;
    let admin: Api<CredentialRequest> = Api::namespaced(s.admin.clone(), &s.namespace);
    let label = serde_json::json!({ "metadata": { "labels": { "touched": "yes" } } });
    admin
        .patch("alice-ed25519", &PatchParams::default(), &Patch::Merge(&label))
        .await?;
    let rewrite = serde_json::json!({
        "metadata": { "resourceVersion": stale },
        "status": { "username": "someone-else" },
    });
    let refused = admin
        .patch_status("alice-ed25519", &PatchParams::default(), &Patch::Merge(&rewrite))
        .await;
    ensure!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 409),
        "a status write with a stale resourceVersion was not refused: {refused:?}"
    );
    Ok(())
}

async fn refusals(s: &Scenario<'_>) -> Result<()> {
    let admin: Api<CredentialRequest> = Api::namespaced(s.admin.clone(), &s.namespace);
    let workstation = Workstation::new(KeyType::Ed25519).await?;
    s.request("pending", "alice", "1h", &["i-0ccccccccccccccc3"])?;
    s.apply(
        &fixtures::request("done")
            .namespace(&s.namespace)
            .account(&s.account)
            .targets(["i-0ccccccccccccccc3"])
            .completed(),
    )?;
    s.wait_phase("pending", Phase::Pending, PROVISION_TIMEOUT).await?;
    s.wait_phase("done", Phase::Completed, PROVISION_TIMEOUT).await?;

    // The admission policy is not installed on the shared plane: the admin creates bob's in his name.
    // (name, its AccessRequest, requester, reason, what the message starts with, then says too)
    let cases: [(&str, &str, &str, &str, &[&str]); 4] = [
        (
            "bob-for-alice",
            "pending",
            "bob",
            "RequesterMismatch",
            &["spec.requester bob is not the requester of AccessRequest pending"],
        ),
        (
            "while-pending",
            "pending",
            "alice",
            "RequestNotActive",
            &[
                "AccessRequest pending is Pending: ",
                "follow it with `kubectl passport get pending`",
            ],
        ),
        (
            "after-completion",
            "done",
            "alice",
            "RequestNotActive",
            &[
                "AccessRequest done is Completed: access has ended",
                "request access again",
            ],
        ),
        (
            "no-such",
            "nope",
            "alice",
            "RequestNotFound",
            &["spec.accessRequest nope does not exist"],
        ),
    ];
    for (name, access_request, requester, _, _) in cases {
        create(
            &admin,
            name,
            workstation.spec(access_request, requester, KeyType::Ed25519)?,
        )
        .await?;
    }
    let mut failures = Vec::new();
    for (name, _, _, reason, message) in cases {
        let decided = wait_decided(s, &admin, name).await?;
        let issued = issued_condition(&decided).context("undecided")?;
        let says = message.iter().all(|part| issued.message.contains(part));
        if issued.status != ConditionStatus::False
            || issued.reason != reason
            || !issued.message.starts_with(message[0])
            || !says
        {
            failures.push(format!(
                "{name}: {} {}: {} (expected False {reason}: {message:?})",
                issued.status, issued.reason, issued.message
            ));
        }
        let st = decided.status.unwrap_or_default();
        ensure!(
            st.certificates.is_empty() && st.sealed_secrets.is_empty() && st.valid_before.is_none(),
            "{name}: a refusal carries credentials"
        );
    }
    ensure!(failures.is_empty(), "refusals:\n{}", failures.join("\n"));
    Ok(())
}

//! CredentialRequests on real parts: the operator certifies a workstation key that logs in to an
//! OpenSSH instance, seals a scoped AWS session (moto issues it; the recorded AssumeRole shows its
//! policy) to an age key only the test holds, and refuses requests for someone else's or an inactive
//! AccessRequest with its reason.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::Stdio,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_ssm::config::{Credentials, SharedCredentialsProvider};
use jiff::Timestamp;
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
    runtime::wait::await_condition,
};
use passport_crds::{
    CredentialRequest, CredentialRequestSpec, KeyType, Phase,
    credential_request::CredentialRequestStatus,
    sealed::{AWS_SESSION, AwsSession},
};
use passport_tests::{aws::Platform, instance::Instance, kubectl};
use serde_json::Value;

use crate::{TestFn, scenario::Scenario, test};

const PROVISION_TIMEOUT: Duration = Duration::from_secs(60);
const ISSUE_TIMEOUT: Duration = Duration::from_secs(30);
const ROLE: &str = "arn:aws:iam::123456789012:role/passport-e2e";
const BENCH_REQUESTS: usize = 50;

pub fn trials() -> Vec<(&'static str, TestFn)> {
    vec![
        test(
            "credentials::issued_credentials_work_and_are_scoped",
            |env| async move {
                let (plane, emulator, operator) =
                    (env.plane().await?, env.emulator().await?, env.operator().await?);
                let instance = Instance::start().await?;
                emulator
                    .register_agent(instance.id(), Platform::Linux, Some(instance.runner_argv()))
                    .await?;
                let s = Scenario::new(
                    plane,
                    emulator,
                    operator,
                    env.namespace("creds").await?,
                    &["alice"],
                    &[instance.id()],
                )
                .await?;
                issued_credentials(&s, &instance).await
            },
        ),
        test("credentials::refusals_say_why", |env| async move {
            let (plane, emulator, operator) =
                (env.plane().await?, env.emulator().await?, env.operator().await?);
            // Nobody is auto-approved: alice's requests stay Pending.
            let s = Scenario::new(
                plane,
                emulator,
                operator,
                env.namespace("refuse").await?,
                &["dave"],
                &["i-0ccccccccccccccc3"],
            )
            .await?;
            refusals(&s).await
        }),
        test("credentials::bench_issuance", |env| async move {
            if std::env::var("PASSPORT_BENCH").as_deref() != Ok("1") {
                return Ok(());
            }
            let (plane, emulator, operator) =
                (env.plane().await?, env.emulator().await?, env.operator().await?);
            let instance = Instance::start().await?;
            emulator
                .register_agent(instance.id(), Platform::Linux, Some(instance.runner_argv()))
                .await?;
            let s = Scenario::new(
                plane,
                emulator,
                operator,
                env.namespace("credbench").await?,
                &["alice"],
                &[instance.id()],
            )
            .await?;
            bench_issuance(&s, &instance).await
        }),
    ]
}

/// A workstation: a key pair made by `ssh-keygen`, and an age identity to unseal with.
struct Workstation {
    dir: tempfile::TempDir,
    key: PathBuf,
    identity: age::x25519::Identity,
}

impl Workstation {
    async fn new(key_type: KeyType) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("passport-creds-").tempdir()?;
        let (file, args): (&str, &[&str]) = match key_type {
            KeyType::Ed25519 => ("id_ed25519", &["-t", "ed25519"]),
            KeyType::Rsa => ("id_rsa", &["-t", "rsa", "-b", "3072"]),
        };
        let key = dir.path().join(file);
        let output = tokio::process::Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", "e2e@workstation"])
            .args(args)
            .arg("-f")
            .arg(&key)
            .output()
            .await
            .context("running ssh-keygen (openssh-client)")?;
        ensure!(
            output.status.success(),
            "ssh-keygen: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(Self {
            dir,
            key,
            identity: age::x25519::Identity::generate(),
        })
    }

    fn public_key(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.key.with_extension("pub"))?
            .trim()
            .to_owned())
    }

    fn spec(
        &self,
        access_request: &str,
        requester: &str,
        key_type: KeyType,
    ) -> Result<CredentialRequestSpec> {
        Ok(CredentialRequestSpec {
            access_request: access_request.into(),
            requester: requester.into(),
            public_key: self.public_key()?,
            key_type,
            sealing_key: self.identity.to_public().to_string(),
        })
    }

    fn unseal(&self, ciphertext: &str) -> Result<Vec<u8>> {
        age::decrypt(&self.identity, ciphertext.as_bytes())
            .context("unsealing with the workstation's identity")
    }

    /// Writes `certificate` next to the key and logs in with it, host keys pinned from `host_keys`.
    async fn ssh(
        &self,
        instance: &Instance,
        user: &str,
        certificate: &str,
        host_keys: &[String],
    ) -> Result<String> {
        let cert = self.dir.path().join(format!(
            "{}-cert-{}.pub",
            self.key.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
            rand_suffix()
        ));
        std::fs::write(&cert, format!("{certificate}\n"))?;
        let known_hosts = self.dir.path().join("known_hosts");
        let lines: String = host_keys
            .iter()
            .map(|key| {
                let key: Vec<&str> = key.split_whitespace().take(2).collect();
                format!("[127.0.0.1]:{} {}\n", instance.ssh_port(), key.join(" "))
            })
            .collect();
        std::fs::write(&known_hosts, lines)?;
        let output = tokio::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(&self.key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args(["-o", "ConnectTimeout=5", "-p", &instance.ssh_port().to_string()])
            .arg(format!("{user}@127.0.0.1"))
            .arg("whoami")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("running ssh")?;
        ensure!(
            output.status.success(),
            "ssh with the issued certificate failed: {}\nsshd log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            instance.log_tail()
        );
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// `ssh-keygen -L` of a certificate, in UTC.
    async fn describe(&self, certificate: &str) -> Result<String> {
        let path = self.dir.path().join(format!("describe-{}.pub", rand_suffix()));
        std::fs::write(&path, format!("{certificate}\n"))?;
        let output = tokio::process::Command::new("ssh-keygen")
            .env("TZ", "UTC")
            .arg("-L")
            .arg("-f")
            .arg(&path)
            .output()
            .await?;
        ensure!(
            output.status.success(),
            "ssh-keygen -L: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// A fresh file name suffix.
fn rand_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// Lets the test users create CredentialRequests in the scenario's namespace, as passport-requester.
fn bind_requesters(s: &Scenario<'_>) -> Result<()> {
    let binding = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: requesters\n  namespace: {}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: passport-requester}}\n\
         subjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: developers}}\n",
        s.namespace
    );
    kubectl::apply(&s.plane.admin_kubeconfig(), &binding)?
        .ok()
        .map(drop)
}

async fn create(api: &Api<CredentialRequest>, name: &str, spec: CredentialRequestSpec) -> Result<()> {
    let request = CredentialRequest {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    api.create(&PostParams::default(), &request).await?;
    Ok(())
}

fn issued_condition(request: &CredentialRequest) -> Option<(String, String, String)> {
    request
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Issued" && (c.status == "True" || c.status == "False"))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Watches until the operator has decided (Issued True or False).
async fn wait_decided(
    s: &Scenario<'_>,
    api: &Api<CredentialRequest>,
    name: &str,
) -> Result<CredentialRequest> {
    let decided = |r: Option<&CredentialRequest>| r.is_some_and(|r| issued_condition(r).is_some());
    match tokio::time::timeout(ISSUE_TIMEOUT, await_condition(api.clone(), name, decided)).await {
        Ok(Ok(Some(request))) => Ok(request),
        Ok(Ok(None)) => bail!("CredentialRequest {name} is gone"),
        Ok(Err(err)) => bail!("watching CredentialRequest {name}: {err}"),
        Err(_) => bail!(
            "CredentialRequest {name} not decided after {ISSUE_TIMEOUT:?}: {:?}\n--- operator log ---\n{}",
            api.get_opt(name).await?.and_then(|r| r.status),
            s.operator.log_tail()
        ),
    }
}

fn issued_status(request: &CredentialRequest) -> Result<CredentialRequestStatus> {
    let (status, reason, message) = issued_condition(request).context("undecided")?;
    ensure!(status == "True", "refused: {reason}: {message}");
    request.status.clone().context("no status")
}

async fn issued_credentials(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    s.request("r", "alice", "1h", &[instance.id()])?;
    let active = s.wait_phase("r", Phase::Active, PROVISION_TIMEOUT).await?;
    let ar_status = active.status.clone().context("no status")?;
    let username = ar_status.username.clone().context("no username")?;
    let expires_at = ar_status.expires_at.clone().context("no expiresAt")?.0;
    bind_requesters(s)?;
    let alice: Api<CredentialRequest> = Api::namespaced(s.plane.user_client("alice").await?, &s.namespace);

    // Ed25519.
    let workstation = Workstation::new(KeyType::Ed25519).await?;
    let spec = workstation.spec("r", "alice", KeyType::Ed25519)?;
    // A fresh RoleBinding may take a moment to be authorized; retry the first create.
    let mut created = create(&alice, "alice-ed25519", spec.clone()).await;
    for _ in 0..50 {
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        created = create(&alice, "alice-ed25519", spec.clone()).await;
    }
    created?;
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
            && tunnel.ssh_document == "AWS-StartSSHSession"
            && tunnel.port_forwarding_document == "AWS-StartPortForwardingSession",
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
    ensure!(
        principals == [username.as_str()],
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
    let session_name = format!("passport-{username}-{:08x}", serial >> 32);
    let caller = caller_arn(s, &session).await?;
    ensure!(
        caller == format!("arn:aws:sts::123456789012:assumed-role/passport-e2e/{session_name}"),
        "the unsealed credentials are {caller}, not the scoped session {session_name}"
    );
    check_recorded_policy(s, instance, &session_name, expires_at, &session).await?;
    check_logbook(s, &session_name, serial, &session).await?;

    // RSA: both SHA-2 certificates, each logs in.
    let rsa = Workstation::new(KeyType::Rsa).await?;
    create(&alice, "alice-rsa", rsa.spec("r", "alice", KeyType::Rsa)?).await?;
    let status = issued_status(&wait_decided(s, &alice, "alice-rsa").await?)?;
    let algorithms: Vec<&str> = status.certificates.iter().map(|c| c.algorithm.as_str()).collect();
    ensure!(algorithms == ["rsa-sha2-512", "rsa-sha2-256"], "{algorithms:?}");
    for certificate in &status.certificates {
        let described = rsa.describe(&certificate.certificate).await?;
        ensure!(
            described.contains(&format!("(using {})", certificate.algorithm)),
            "{}: {described}",
            certificate.algorithm
        );
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
    Ok(())
}

fn principals(described: &str) -> Vec<&str> {
    let mut lines = described
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Principals:"));
    lines.next();
    lines
        .take_while(|l| !l.trim_start().starts_with("Critical Options:"))
        .map(str::trim)
        .collect()
}

fn field<'a>(described: &'a str, name: &str) -> Option<&'a str> {
    described
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(name))
        .map(str::trim)
}

/// The end of `Valid: from X to Y` (UTC, since `describe` runs with TZ=UTC).
fn valid_to(described: &str) -> Result<Timestamp> {
    let valid = field(described, "Valid:").context("no Valid: line")?;
    let to = valid.rsplit(" to ").next().context("no end of validity")?;
    let civil: jiff::civil::DateTime = to.parse()?;
    Ok(civil.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}

/// STS GetCallerIdentity with the unsealed credentials, against the emulator.
async fn caller_arn(s: &Scenario<'_>, session: &AwsSession) -> Result<String> {
    let credentials = Credentials::new(
        session.access_key_id.clone(),
        session.secret_access_key.clone(),
        Some(session.session_token.clone()),
        None,
        "unsealed",
    );
    let config = s
        .emulator
        .sdk_config()
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await?;
    Ok(identity.arn().unwrap_or_default().to_owned())
}

/// The AssumeRole moto recorded for the session: exactly the request's instance and the two
/// documents, every statement conditioned on the request's expiry.
async fn check_recorded_policy(
    s: &Scenario<'_>,
    instance: &Instance,
    session_name: &str,
    expires_at: Timestamp,
    session: &AwsSession,
) -> Result<()> {
    let calls = s.emulator.assumed_roles().await?;
    let call = calls
        .iter()
        .find(|c| c["RoleSessionName"] == session_name)
        .with_context(|| format!("no AssumeRole with session name {session_name}: {calls:#?}"))?;
    ensure!(call["RoleArn"] == ROLE, "{call}");
    ensure!(call["ExternalId"] == format!("e2e-{}", s.namespace), "{call}");
    ensure!(call["AccessKeyId"] == session.access_key_id.as_str(), "{call}");
    let duration = call["DurationSeconds"].as_i64().unwrap_or_default();
    ensure!((900..=3600).contains(&duration), "DurationSeconds {duration}");
    let policy: Value = serde_json::from_str(call["Policy"].as_str().context("no Policy")?)?;
    let statements = policy["Statement"].as_array().context("no statements")?;
    let start = statements
        .iter()
        .find(|st| st["Action"] == serde_json::json!(["ssm:StartSession"]))
        .context("no StartSession statement")?;
    let resources: BTreeSet<&str> = start["Resource"]
        .as_array()
        .context("no resources")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let instance_arn = format!("arn:aws:ec2:us-east-1:123456789012:instance/{}", instance.id());
    let expected: BTreeSet<&str> = [
        instance_arn.as_str(),
        "arn:aws:ssm:us-east-1::document/AWS-StartSSHSession",
        "arn:aws:ssm:us-east-1::document/AWS-StartPortForwardingSession",
    ]
    .into();
    ensure!(resources == expected, "StartSession resources {resources:?}");
    let deadline = expires_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    for statement in statements {
        ensure!(
            statement["Condition"]["DateLessThan"]["aws:CurrentTime"] == deadline.as_str(),
            "statement without the expiry condition: {statement}"
        );
    }
    Ok(())
}

/// The logbook Event on the AccessRequest names the serial and session, and no secret.
async fn check_logbook(
    s: &Scenario<'_>,
    session_name: &str,
    serial: u64,
    session: &AwsSession,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = kubectl::run(
            &s.plane.admin_kubeconfig(),
            &["get", "events.events.k8s.io", "-n", &s.namespace, "-o", "json"],
            None,
        )?
        .ok()?
        .stdout;
        let events: Value = serde_json::from_str(&events)?;
        let issued: Vec<&Value> = events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["reason"] == "CredentialIssued" && e["regarding"]["name"] == "r")
            .collect();
        if let Some(event) = issued
            .iter()
            .find(|e| e["note"].as_str().is_some_and(|n| n.contains(session_name)))
        {
            ensure!(event["action"] == "credential_issued", "{event}");
            let note = event["note"].as_str().unwrap_or_default();
            ensure!(note.contains(&serial.to_string()), "{note}");
            let text = events.to_string();
            ensure!(
                !text.contains(&session.secret_access_key) && !text.contains(&session.session_token),
                "an Event carries a secret"
            );
            let log = s.operator.log_tail();
            ensure!(
                !log.contains(&session.secret_access_key) && !log.contains(&session.session_token),
                "the operator log carries a secret"
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "no credential_issued Event: {issued:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn refusals(s: &Scenario<'_>) -> Result<()> {
    let admin: Api<CredentialRequest> = Api::namespaced(s.admin.clone(), &s.namespace);
    let workstation = Workstation::new(KeyType::Ed25519).await?;
    s.request("pending", "alice", "1h", &["i-0ccccccccccccccc3"])?;
    let manifest = format!(
        "apiVersion: passport.dev/v1alpha1\nkind: AccessRequest\nmetadata:\n  name: done\n  namespace: {}\n\
         spec:\n  requester: alice\n  reason: e2e\n  completed: true\n  account: {}\n  targets:\n  - instanceId: i-0ccccccccccccccc3\n",
        s.namespace, s.account
    );
    kubectl::apply(&s.plane.admin_kubeconfig(), &manifest)?.ok()?;
    s.wait_phase("pending", Phase::Pending, PROVISION_TIMEOUT).await?;
    s.wait_phase("done", Phase::Completed, PROVISION_TIMEOUT).await?;

    // The admission policy is not installed on the shared plane: the admin creates bob's in his name.
    let cases = [
        (
            "bob-for-alice",
            "pending",
            "bob",
            "RequesterMismatch",
            "spec.requester bob is not the requester of AccessRequest pending",
        ),
        (
            "while-pending",
            "pending",
            "alice",
            "RequestNotActive",
            "AccessRequest pending is Pending: wait for approval",
        ),
        (
            "after-completion",
            "done",
            "alice",
            "RequestNotActive",
            "AccessRequest done is Completed: create a new AccessRequest",
        ),
        (
            "no-such",
            "nope",
            "alice",
            "RequestNotFound",
            "spec.accessRequest nope does not exist",
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
    for (name, _, _, reason, message) in cases {
        let decided = wait_decided(s, &admin, name).await?;
        let (status, got_reason, got_message) = issued_condition(&decided).context("undecided")?;
        ensure!(
            status == "False" && got_reason == reason,
            "{name}: {status} {got_reason}: {got_message}"
        );
        ensure!(got_message.starts_with(message), "{name}: {got_message}");
        let st = decided.status.unwrap_or_default();
        ensure!(
            st.certificates.is_empty() && st.sealed_secrets.is_empty() && st.valid_before.is_none(),
            "{name}: a refusal carries credentials"
        );
    }
    Ok(())
}

/// Issuance latency as the CLI sees it: create → Issued observed through a watch, one at a time.
async fn bench_issuance(s: &Scenario<'_>, instance: &Instance) -> Result<()> {
    s.request("r", "alice", "1h", &[instance.id()])?;
    s.wait_phase("r", Phase::Active, PROVISION_TIMEOUT).await?;
    let api: Api<CredentialRequest> = Api::namespaced(s.admin.clone(), &s.namespace);
    let workstation = Workstation::new(KeyType::Ed25519).await?;
    let mut latencies = Vec::new();
    for i in 0..BENCH_REQUESTS {
        let name = format!("bench-{i:02}");
        let started = Instant::now();
        create(&api, &name, workstation.spec("r", "alice", KeyType::Ed25519)?).await?;
        issued_status(&wait_decided(s, &api, &name).await?)?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let worst = latencies[latencies.len() - 1];
    let p90 = latencies[latencies.len() * 9 / 10];
    eprintln!(
        "credentials bench: {BENCH_REQUESTS} CredentialRequests, create → Issued: median {median:?}, p90 {p90:?}, \
         worst {worst:?}, best {:?}",
        latencies[0]
    );
    Ok(())
}

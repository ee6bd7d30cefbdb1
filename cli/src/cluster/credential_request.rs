//! Obtaining credentials through a CredentialRequest: the public key goes out, a certificate comes
//! back, and every secret in the answer is sealed to an age identity that never leaves this machine.
//! What was issued is kept next to the key, so ssh invocations reuse it until it is about to expire.

use std::{fs, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{ObjectMeta, PostParams},
    runtime::watcher::watch_object,
};
use passport_crds::{
    AccessRequest, CredentialRequest, CredentialRequestSpec, KeyType,
    common::condition_types::ISSUED,
    credential_request::{InstanceHostKeys, IssuedCertificate, SealedSecret, TunnelParameters},
    sealed::{AWS_SESSION, AwsSession},
};
use serde::{Deserialize, Serialize};
use ssh_key::{Certificate, PublicKey};

use crate::{errors, keys::KeyDir, names, session::Session};

/// How long the operator may take to issue: it retries AWS for two minutes before refusing.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(150);
/// Clock skew tolerated on a certificate's start.
const SKEW: i64 = 60;
/// Label tying a CredentialRequest to its AccessRequest.
pub const ACCESS_REQUEST_LABEL: &str = "passport.dev/access-request";

/// What a CredentialRequest issued, as kept on disk (`<key>.issued.json`); secrets stay sealed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    pub access_request_uid: String,
    pub credential_request: String,
    pub username: String,
    /// Unix seconds: the earlier of the certificate's and the status' end.
    pub valid_before: i64,
    pub certificate: String,
    #[serde(default)]
    pub host_keys: Vec<InstanceHostKeys>,
    #[serde(default)]
    pub tunnel: Option<TunnelParameters>,
    #[serde(default)]
    pub sealed_secrets: Vec<SealedSecret>,
}

/// What the caller needs from the credentials.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    /// The certificate must stay valid at least this long.
    pub min_validity: Duration,
    /// A sealed AWS session (for Session Manager) valid that long is needed too.
    pub aws_session: bool,
}

/// Credentials for `request` with the key in `keys`: the ones on disk when they satisfy `need`,
/// else fresh ones from a new CredentialRequest (written to disk before returning).
pub async fn ensure(session: &Session, request: &AccessRequest, keys: &KeyDir, need: Need) -> Result<Issued> {
    let lock = tokio::task::block_in_place(|| keys.lock())?;
    let comment = format!("passport {}/{}", session.namespace, request.name_any());
    let public = keys.ensure_key_pair(&comment)?;
    let uid = request.uid().unwrap_or_default();
    if let Some(issued) = cached(keys, &public, &uid, need) {
        return Ok(issued);
    }
    let issued = obtain(session, request, keys, &public).await?;
    write_issued(keys, request, &issued)?;
    drop(lock);
    Ok(issued)
}

/// The credentials on disk, if they are for this key and request and valid long enough.
fn cached(keys: &KeyDir, public: &PublicKey, uid: &str, need: Need) -> Option<Issued> {
    let text = fs::read_to_string(keys.issued()).ok()?;
    let issued: Issued = serde_json::from_str(&text).ok()?;
    let on_disk = fs::read_to_string(keys.certificate()).ok()?;
    if issued.access_request_uid != uid || on_disk.trim() != issued.certificate.trim() {
        return None;
    }
    let now = Timestamp::now().as_second();
    let min = i64::try_from(need.min_validity.as_secs()).unwrap_or(i64::MAX);
    let certificate = Certificate::from_openssh(issued.certificate.trim()).ok()?;
    let fresh = certificate.public_key() == public.key_data()
        && valid_between(&certificate, now, min)
        && issued.valid_before >= now.saturating_add(min);
    if !fresh {
        return None;
    }
    if need.aws_session {
        let session = aws_session(keys, &issued).ok()?;
        let expires: Timestamp = session.expiration.parse().ok()?;
        if expires.as_second() < now.saturating_add(min) {
            return None;
        }
    }
    Some(issued)
}

/// Whether the certificate has started (give or take [`SKEW`]) and lasts `min` more seconds.
pub fn valid_between(certificate: &Certificate, now: i64, min: i64) -> bool {
    let after = i64::try_from(certificate.valid_after()).unwrap_or(i64::MAX);
    let before = i64::try_from(certificate.valid_before()).unwrap_or(i64::MAX);
    after <= now + SKEW && before >= now.saturating_add(min)
}

/// Creates a CredentialRequest for the key and waits until it is issued.
async fn obtain(
    session: &Session,
    request: &AccessRequest,
    keys: &KeyDir,
    public: &PublicKey,
) -> Result<Issued> {
    let name = request.name_any();
    let me = session.whoami().await?;
    let identity = keys.new_sealing_identity()?;
    let object = CredentialRequest {
        metadata: ObjectMeta {
            generate_name: Some(names::generate_name(&name, "cred")),
            namespace: Some(session.namespace.clone()),
            labels: Some([(ACCESS_REQUEST_LABEL.to_owned(), name.clone())].into()),
            ..ObjectMeta::default()
        },
        spec: CredentialRequestSpec {
            access_request: name.clone(),
            requester: me.username.clone(),
            public_key: public.to_openssh().context("encoding the public key")?,
            key_type: keys.key_type,
            sealing_key: identity.to_public().to_string(),
        },
        status: None,
    };
    let api: Api<CredentialRequest> = session.api();
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .map_err(|err| errors::api(err, "create", "credentialrequests", &session.namespace))?;
    let cr_name = created.name_any();
    let done = wait_issued(&api, &cr_name, &session.namespace)
        .await
        .map_err(|err| errors_in_waiting(err, &cr_name, &session.namespace))?;
    from_status(&done, request, keys.key_type, public)
}

fn errors_in_waiting(err: anyhow::Error, name: &str, namespace: &str) -> anyhow::Error {
    match err.downcast::<kube::Error>() {
        Ok(err) => errors::api(err, "watch", "credentialrequests", namespace),
        Err(err) => err.context(format!("CredentialRequest {name}")),
    }
}

/// Waits for condition Issued: True returns the object, False fails with its message.
async fn wait_issued(api: &Api<CredentialRequest>, name: &str, namespace: &str) -> Result<CredentialRequest> {
    let mut stream = std::pin::pin!(watch_object(api.clone(), name));
    let deadline = tokio::time::sleep(ISSUE_TIMEOUT);
    tokio::pin!(deadline);
    let mut said = String::new();
    loop {
        tokio::select! {
            () = &mut deadline => bail!(
                "not issued within {}s: is the passport operator running? (kubectl get credentialrequest {name} -n {namespace})",
                ISSUE_TIMEOUT.as_secs(),
            ),
            event = stream.next() => match event {
                None => bail!("the watch ended"),
                Some(Err(err)) => return Err(match err {
                    kube::runtime::watcher::Error::InitialListFailed(e)
                    | kube::runtime::watcher::Error::WatchStartFailed(e)
                    | kube::runtime::watcher::Error::WatchFailed(e) => anyhow::Error::new(e),
                    other => anyhow!("{other}"),
                }),
                Some(Ok(None)) => bail!("it was deleted before it was issued"),
                Some(Ok(Some(object))) => match issued_state(&object) {
                    Some(Ok(())) => return Ok(object),
                    Some(Err(message)) => bail!("refused: {message}"),
                    None => {
                        // Issued=Unknown says why it is taking long (e.g. AWS retries).
                        let waiting = waiting_message(&object);
                        if !waiting.is_empty() && waiting != said {
                            eprintln!("kubectl-passport: waiting for credentials: {waiting}");
                            said = waiting;
                        }
                    }
                },
            },
        }
    }
}

/// The message of a pending Issued condition, if any.
fn waiting_message(object: &CredentialRequest) -> String {
    object
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == ISSUED)
        .map(|c| errors::fold(&c.message))
        .unwrap_or_default()
}

/// Issued=True → Ok, Issued=False → Err(reason: message), no verdict yet → None.
pub fn issued_state(object: &CredentialRequest) -> Option<Result<(), String>> {
    let status = object.status.as_ref()?;
    let condition = status.conditions.iter().find(|c| c.type_ == ISSUED)?;
    if let Some(generation) = object.metadata.generation
        && condition
            .observed_generation
            .is_some_and(|seen| seen < generation)
    {
        return None;
    }
    match condition.status.as_str() {
        "True" => Some(Ok(())),
        "False" => Some(Err(match (condition.reason.as_str(), condition.message.trim()) {
            (reason, "") => reason.to_owned(),
            ("", message) => message.to_owned(),
            (reason, message) => format!("{reason}: {message}"),
        })),
        _ => None,
    }
}

/// The certificate to use: `ssh-ed25519` for Ed25519; for RSA the rsa-sha2-512 one, else the best
/// other.
pub fn pick_certificate(certificates: &[IssuedCertificate], key_type: KeyType) -> Option<&IssuedCertificate> {
    let preference: &[&str] = match key_type {
        KeyType::Ed25519 => &["ssh-ed25519"],
        KeyType::Rsa => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
    };
    preference
        .iter()
        .find_map(|want| certificates.iter().find(|c| c.algorithm == *want))
        .or_else(|| certificates.first())
}

/// What an issued CredentialRequest's status gives, checked against the key it was for.
pub fn from_status(
    object: &CredentialRequest,
    request: &AccessRequest,
    key_type: KeyType,
    public: &PublicKey,
) -> Result<Issued> {
    let name = object.name_any();
    let status = object
        .status
        .clone()
        .ok_or_else(|| anyhow!("CredentialRequest {name} is issued but has no status"))?;
    let chosen = pick_certificate(&status.certificates, key_type)
        .ok_or_else(|| anyhow!("CredentialRequest {name} is issued but carries no certificate"))?;
    let certificate = Certificate::from_openssh(chosen.certificate.trim())
        .map_err(|err| anyhow!("CredentialRequest {name}: the certificate does not parse: {err}"))?;
    if certificate.public_key() != public.key_data() {
        bail!("CredentialRequest {name}: the certificate is for another key");
    }
    let cert_end = i64::try_from(certificate.valid_before()).unwrap_or(i64::MAX);
    let valid_before = status
        .valid_before
        .map_or(cert_end, |t| t.0.as_second().min(cert_end));
    let request_status = request.status.clone().unwrap_or_default();
    let username = status
        .username
        .or(request_status.username)
        .ok_or_else(|| anyhow!("CredentialRequest {name} names no username"))?;
    let host_keys = if status.host_keys.is_empty() {
        request_status
            .targets
            .iter()
            .map(|t| InstanceHostKeys {
                instance_id: t.instance_id.clone(),
                host_keys: t.host_keys.clone(),
            })
            .collect()
    } else {
        status.host_keys
    };
    Ok(Issued {
        access_request_uid: request.uid().unwrap_or_default(),
        credential_request: name,
        username,
        valid_before,
        certificate: chosen.certificate.trim().to_owned(),
        host_keys,
        tunnel: status.tunnel,
        sealed_secrets: status.sealed_secrets,
    })
}

/// Writes the certificate, known_hosts and the record of what was issued.
fn write_issued(keys: &KeyDir, request: &AccessRequest, issued: &Issued) -> Result<()> {
    crate::keys::write_atomic(
        &keys.certificate(),
        format!("{}\n", issued.certificate).as_bytes(),
        0o644,
    )?;
    write_known_hosts(keys, request, &issued.host_keys)?;
    let json = serde_json::to_vec_pretty(issued)?;
    crate::keys::write_atomic(&keys.issued(), &json, 0o600)
}

/// Writes known_hosts: `host_keys` when given, else the AccessRequest's own record of them.
pub fn write_known_hosts(
    keys: &KeyDir,
    request: &AccessRequest,
    host_keys: &[InstanceHostKeys],
) -> Result<()> {
    let from_request: Vec<(String, Vec<String>)>;
    let entries: Vec<(&str, &[String])> = if host_keys.iter().any(|h| !h.host_keys.is_empty()) {
        host_keys
            .iter()
            .map(|h| (h.instance_id.as_str(), h.host_keys.as_slice()))
            .collect()
    } else {
        from_request = request
            .status
            .iter()
            .flat_map(|s| s.targets.iter())
            .map(|t| (t.instance_id.clone(), t.host_keys.clone()))
            .collect();
        from_request
            .iter()
            .map(|(i, k)| (i.as_str(), k.as_slice()))
            .collect()
    };
    crate::keys::write_atomic(
        &keys.known_hosts(),
        render_known_hosts(&entries).as_bytes(),
        0o644,
    )
}

/// known_hosts lines `<instance-id> <type> <base64>`, for ssh's `HostKeyAlias=<instance-id>`: host
/// keys are pinned by instance, whatever address the tunnel ends up at. Comments are dropped and
/// anything that is not a public key line is skipped.
pub fn render_known_hosts(entries: &[(&str, &[String])]) -> String {
    let mut out = String::new();
    for (instance, keys) in entries {
        for key in keys.iter() {
            let mut fields = key.split_whitespace();
            let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
                continue;
            };
            let plausible =
                (kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
                    && blob
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
            if plausible && !instance.is_empty() && !instance.contains(char::is_whitespace) {
                out.push_str(&format!("{instance} {kind} {blob}\n"));
            }
        }
    }
    out
}

/// Decrypts the sealed secret of `kind` (for `instance`, when per instance) with the stored identity.
pub fn unseal(keys: &KeyDir, issued: &Issued, kind: &str, instance: Option<&str>) -> Result<Vec<u8>> {
    let sealed = issued
        .sealed_secrets
        .iter()
        .find(|s| s.kind == kind && (s.instance_id.is_none() || s.instance_id.as_deref() == instance))
        .ok_or_else(|| {
            anyhow!(
                "CredentialRequest {} carries no {kind} secret{}",
                issued.credential_request,
                instance.map(|i| format!(" for {i}")).unwrap_or_default()
            )
        })?;
    let identity = keys.read_sealing_identity()?;
    age::decrypt(&identity, sealed.ciphertext.as_bytes()).map_err(|err| {
        anyhow!(
            "cannot unseal the {kind} secret of CredentialRequest {}: {err}",
            issued.credential_request
        )
    })
}

/// The sealed scoped AWS session, unsealed.
pub fn aws_session(keys: &KeyDir, issued: &Issued) -> Result<AwsSession> {
    let plain = unseal(keys, issued, AWS_SESSION, None)?;
    serde_json::from_slice(&plain).context("the aws-session secret is not the expected JSON")
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;

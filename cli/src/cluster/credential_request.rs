//! The CredentialRequest exchange with the operator: the public key and a fresh sealing key go out,
//! a certificate and sealed secrets come back. What was issued is kept beside the key, so that ssh
//! runs reuse it until it is about to expire.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use kube::{ResourceExt, api::ObjectMeta};
use passport_core::ssh_ca::{SSH_RSA, Sha1Certificate};
use passport_crds::{
    AccessRequest, CredentialRequest, CredentialRequestSpec, KeyType,
    conditions::{ConditionStatus, find, observe, types::ISSUED},
    credential_request::{InstanceHostKeys, IssuedCertificate},
};
use ssh_key::{Certificate, PublicKey};

use super::{condition_text, names, session::Session, wait};
use crate::workstation::{
    issued::{Issued, Need},
    key_dir::KeyDir,
    sealing,
};

/// How long the operator may take to issue: it retries AWS for two minutes before refusing.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(150);
/// Label tying a CredentialRequest to its AccessRequest.
const ACCESS_REQUEST_LABEL: &str = "passport.dev/access-request";

/// Credentials for `request` with the key in `keys`: the ones on disk when they satisfy `need`,
/// else fresh ones from a new CredentialRequest (written to disk before returning).
pub async fn credentials(
    session: &Session,
    request: &AccessRequest,
    keys: &KeyDir,
    need: Need,
) -> Result<Issued> {
    let _lock = tokio::task::block_in_place(|| keys.lock())?;
    let comment = format!("passport {}/{}", session.namespace, request.name_any());
    let public = keys.ensure_key_pair(&comment)?;
    let uid = request.uid().unwrap_or_default();
    if let Some(issued) = Issued::read_fresh(keys, &public, &uid, need) {
        return Ok(issued);
    }
    let issued = obtain(session, request, keys, &public).await?;
    issued.save(keys, request)?;
    Ok(issued)
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
    let identity = sealing::new_identity(keys)?;
    let object = CredentialRequest {
        metadata: ObjectMeta {
            generate_name: Some(names::generate_name(&name, "cred")),
            namespace: Some(session.namespace.clone()),
            labels: Some([(ACCESS_REQUEST_LABEL.to_owned(), name.clone())].into()),
            ..ObjectMeta::default()
        },
        spec: CredentialRequestSpec {
            access_request: name,
            requester: me.username.clone(),
            public_key: public.to_openssh().context("encoding the public key")?,
            key_type: keys.key_type,
            sealing_key: identity.to_public().to_string(),
        },
        status: None,
    };
    let created = session.create(&object).await?;
    let issued = wait_issued(session, &created.name_any()).await?;
    from_status(&issued, request, keys.key_type, public)
}

/// Waits for condition Issued: True returns the object, False fails with the operator's reason.
/// While it waits, says why whenever the operator tells.
async fn wait_issued(session: &Session, name: &str) -> Result<CredentialRequest> {
    let mut seen = Seen::default();
    let issued = wait::until(&session.api(), name, ISSUE_TIMEOUT, |object| {
        let Some(object) = object else {
            return Some(Err(anyhow!("it was deleted before it was issued")));
        };
        match issued_state(object) {
            Some(Ok(())) => return Some(Ok(object.clone())),
            Some(Err(why)) => return Some(Err(anyhow!("refused: {why}"))),
            None => {}
        }
        if let Some(why) = seen.update(object) {
            eprintln!("kubectl-passport: waiting for credentials: {why}");
        }
        None
    })
    .await
    .with_context(|| format!("CredentialRequest {name}"))?;
    issued.ok_or_else(|| {
        anyhow!(
            "CredentialRequest {name}: not issued within {}s: {} (kubectl get credentialrequest {name} -n {})",
            ISSUE_TIMEOUT.as_secs(),
            seen.why_not_issued(),
            session.namespace
        )
    })
}

/// What waiting for a CredentialRequest has seen of it.
#[derive(Debug, Default)]
struct Seen {
    /// Whether the operator wrote any status.
    status: bool,
    /// The last reason it gave for the wait.
    reason: String,
}

impl Seen {
    /// Takes in a version of the object; returns the operator's reason when it is new.
    fn update(&mut self, object: &CredentialRequest) -> Option<&str> {
        self.status |= object.status.is_some();
        let reason = waiting_reason(object).filter(|reason| *reason != self.reason)?;
        self.reason = reason;
        Some(&self.reason)
    }

    /// Why it was not issued in time: the operator's last word, and a guess only when it said nothing.
    fn why_not_issued(&self) -> &str {
        match (self.status, self.reason.as_str()) {
            (false, _) => "is the passport operator running?",
            (true, "") => "the operator has not said why",
            (true, reason) => reason,
        }
    }
}

/// Issued=True → Ok, Issued=False → Err(reason: message), no verdict (yet) for this generation → None.
pub fn issued_state(object: &CredentialRequest) -> Option<Result<(), String>> {
    let issued = find(&object.status.as_ref()?.conditions, ISSUED)?;
    let stale = issued
        .observed_generation
        .zip(object.metadata.generation)
        .is_some_and(|(seen, current)| seen < current);
    match ConditionStatus::parse(&issued.status) {
        _ if stale => None,
        ConditionStatus::True => Some(Ok(())),
        ConditionStatus::False => Some(Err(condition_text::said(&issued.reason, &issued.message))),
        ConditionStatus::Unknown => None,
    }
}

/// Why issuing takes long, as the operator says it: a failing reconcile (`Reconciled=False`), else
/// the reason of `Issued=Unknown` (e.g. `AwsUnavailable` while it retries AWS).
pub fn waiting_reason(object: &CredentialRequest) -> Option<String> {
    let conditions = &object.status.as_ref()?.conditions;
    condition_text::reconcile_failure(conditions).or_else(|| {
        observe(conditions, ISSUED)
            .filter(|c| c.status == ConditionStatus::Unknown)
            .map(|c| condition_text::said(c.reason, c.message))
            .filter(|said| !said.is_empty())
    })
}

/// The certificate to use: `ssh-ed25519` for Ed25519; for RSA the rsa-sha2-512 one, else the best
/// other SHA-2 one (the `ssh-rsa` one is offered after it: see [`pick_sha1_certificate`]).
pub fn pick_certificate(certificates: &[IssuedCertificate], key_type: KeyType) -> Option<&IssuedCertificate> {
    let preference: &[&str] = match key_type {
        KeyType::Ed25519 => &[KeyType::Ed25519.ssh_name()],
        KeyType::Rsa => &["rsa-sha2-512", "rsa-sha2-256"],
    };
    preference
        .iter()
        .find_map(|want| certificates.iter().find(|c| c.algorithm == *want))
        .or_else(|| certificates.iter().find(|c| c.algorithm != SSH_RSA))
}

/// For an RSA key, the certificate whose CA signature is `ssh-rsa` (SHA-1), for servers older than
/// OpenSSH 7.2; offered after the SHA-2 one.
pub fn pick_sha1_certificate(
    certificates: &[IssuedCertificate],
    key_type: KeyType,
) -> Option<&IssuedCertificate> {
    match key_type {
        KeyType::Ed25519 => None,
        KeyType::Rsa => certificates.iter().find(|c| c.algorithm == SSH_RSA),
    }
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
    let certificate_sha1 = match pick_sha1_certificate(&status.certificates, key_type) {
        Some(sha1) => {
            let read = Sha1Certificate::parse(sha1.certificate.trim()).map_err(|err| {
                anyhow!("CredentialRequest {name}: the ssh-rsa certificate does not parse: {err}")
            })?;
            if read.fields().public_key() != public.key_data() {
                bail!("CredentialRequest {name}: the ssh-rsa certificate is for another key");
            }
            Some(sha1.certificate.trim().to_owned())
        }
        None => None,
    };
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
        certificate_sha1,
        host_keys,
        tunnel: status.tunnel,
        sealed_secrets: status.sealed_secrets,
    })
}

#[cfg(test)]
mod tests;

//! CredentialRequest reconciliation: read the AccessRequest fresh → decide ([`credentials::plan`]) →
//! sign, AssumeRole, seal → write the status once → logbook Event → delete it an hour after it stopped
//! being useful. Nothing secret is logged: log lines and Events carry serials and session names only.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::controller::Action,
};
use passport_crds::{
    AccessRequest, CredentialRequest,
    common::condition_types::ISSUED,
    credential_request::{CredentialRequestStatus, SealedSecret},
};
use rand_core::{OsRng, RngCore};

use super::{Context, Error, STATUS_WRITE_TIMEOUT, access_request::resolve_account, in_namespace};
use crate::{
    aws::{Fleet, ScopedSession},
    conditions,
    credentials::{self, Inputs, Plan, Refusal, decide, seal, status},
    lifecycle::AccountAccess,
    logbook, secrets,
};

/// Retry soon after a conflicting write: the cache is about to show what changed.
const RETRY_CONFLICT: Duration = Duration::from_secs(1);

pub async fn reconcile<F: Fleet>(
    request: Arc<CredentialRequest>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("CredentialRequest");
    let namespace = request.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<CredentialRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    if status::is_decided(request.status.as_ref()) {
        return clean_up(&api, &request).await;
    }
    if request.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let name = request.name_any();
    // Read fresh, not from the cache: a request completed a moment ago must not get credentials.
    let requests: Api<AccessRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let access_request = requests.get_opt(&request.spec.access_request).await?;
    let resolved = access_request.as_ref().map(|r| {
        let policies = in_namespace(ctx.policies.state(), &namespace);
        resolve_account(&ctx, r, &policies, &namespace)
    });
    let account = match &resolved {
        Some((_, Some(account))) => Ok(account),
        Some((AccountAccess::Unusable { message, .. }, None)) => Err(message.as_str()),
        _ => Err("the AccessRequest names no usable AwsAccount"),
    };
    let inputs = Inputs {
        namespace: &namespace,
        name: &name,
        spec: &request.spec,
        access_request: access_request.as_ref(),
        account,
        serial: OsRng.next_u64(),
        now,
    };
    let generation = request.metadata.generation;
    let access_request_uid = access_request.as_ref().and_then(|r| r.metadata.uid.as_deref());
    let decided = match credentials::plan(&inputs) {
        Ok(plan) => match issue(&ctx, &request, access_request_uid, &plan, now).await? {
            Issue::Issued(status) => Decided::Issued(Box::new(plan), status),
            Issue::Refused(refusal) => Decided::Refused(refusal),
            Issue::Retry(status) => return retry_aws(&api, &request, &status).await,
        },
        Err(refusal) => Decided::Refused(refusal),
    };
    let status = match &decided {
        Decided::Issued(_, status) => (**status).clone(),
        Decided::Refused(refusal) => status::refused(refusal, generation, now),
    };
    if !write_once(&api, &request, &status).await? {
        return Ok(Action::requeue(RETRY_CONFLICT));
    }
    let created = request.metadata.creation_timestamp.as_ref().map(|t| t.0);
    match decided {
        Decided::Issued(plan, status) => {
            let valid_before = status.valid_before.map_or(plan.expires_at, |t| t.0);
            ctx.metrics
                .credential_requests
                .with_label_values(&["issued", "Issued"])
                .inc();
            if let Some(created) = created {
                let latency = Timestamp::now().duration_since(created);
                ctx.metrics
                    .credential_issuance
                    .observe(latency.as_secs_f64().max(0.0));
            }
            tracing::info!(
                namespace, name, serial = plan.serial, session = %plan.session.name, %valid_before,
                "issued credentials for {}", plan.username
            );
            if let Some(access_request) = &access_request {
                let entry = status::issued_event(
                    &plan,
                    &format!("{namespace}/{name}"),
                    &request.spec.requester,
                    valid_before,
                );
                logbook::publish(&ctx.recorder, access_request, &entry).await;
            }
        }
        Decided::Refused(refusal) => {
            ctx.metrics
                .credential_requests
                .with_label_values(&["refused", refusal.reason.as_str()])
                .inc();
            tracing::info!(
                namespace,
                name,
                reason = refusal.reason.as_str(),
                "refused credentials: {}",
                refusal.message
            );
        }
    }
    Ok(requeue_until(created, &status))
}

enum Decided {
    Issued(Box<Plan>, Box<CredentialRequestStatus>),
    Refused(Refusal),
}

enum Issue {
    Issued(Box<CredentialRequestStatus>),
    Refused(Refusal),
    /// AWS failed; the status says so while the request keeps retrying.
    Retry(Box<CredentialRequestStatus>),
}

/// Signs, obtains the scoped AWS session and seals every secret.
async fn issue<F: Fleet>(
    ctx: &Arc<Context<F>>,
    request: &CredentialRequest,
    access_request_uid: Option<&str>,
    plan: &Plan,
    now: Timestamp,
) -> Result<Issue, Error> {
    let generation = request.metadata.generation;
    let started = std::time::Instant::now();
    let certificates = {
        let (ctx, plan, public_key) = (ctx.clone(), plan.clone(), request.spec.public_key.clone());
        let ttl = ctx.certificate_ttl;
        // RSA signatures take milliseconds of CPU: off the async workers.
        tokio::task::spawn_blocking(move || {
            ctx.authority
                .ca
                .sign(&plan.certificate_request(&public_key, now, ttl))
        })
        .await
        .map_err(|err| Error::Join(err.to_string()))?
    };
    let certificates = match certificates {
        Ok(certificates) => certificates,
        // Expired between the check and the signature: a refusal like any other expiry.
        Err(err @ crate::ssh_ca::CaError::AccessRequestExpired { .. }) => {
            return Ok(Issue::Refused(Refusal {
                reason: decide::Reason::Expired,
                message: err.to_string(),
            }));
        }
        Err(err) => return Err(Error::Sign(err)),
    };

    let session = ScopedSession {
        session_name: &plan.session.name,
        policy: &plan.session.policy,
        duration: plan.session.duration,
    };
    let signed = started.elapsed();
    let aws = match ctx.fleet.assume_scoped(&plan.account, session).await {
        Ok(aws) => aws,
        Err(err) => {
            let created = request.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
            let error = err.to_string();
            if let Some(refusal) = decide::aws_unavailable(created, now, &plan.account.role_arn, &error) {
                return Ok(Issue::Refused(refusal));
            }
            let mut status = request.status.clone().unwrap_or_default();
            let message = format!(
                "waiting for an AWS session from {}: {error}; retrying",
                plan.account.role_arn
            );
            conditions::set_unknown(
                &mut status.conditions,
                ISSUED,
                "AwsUnavailable",
                message,
                generation,
                now,
            );
            return Ok(Issue::Retry(Box::new(status)));
        }
    };

    let assumed = started.elapsed();
    let mut sealed: Vec<SealedSecret> = vec![seal::aws_session(
        &plan.recipient,
        &status::aws_session(plan, &aws),
    )?];
    if !plan.windows_instances.is_empty() {
        let uid = access_request_uid.ok_or(Error::MissingMetadata("uid"))?;
        let password = secrets::stored_windows_password(ctx.client.clone(), &ctx.namespace, uid)
            .await?
            .ok_or(Error::WindowsPasswordMissing)?;
        for instance_id in &plan.windows_instances {
            sealed.push(seal::windows_password(&plan.recipient, instance_id, &password)?);
        }
    }
    tracing::debug!(
        name = %request.name_any(),
        sign = ?signed,
        assume_role = ?assumed - signed,
        seal = ?started.elapsed() - assumed,
        "issue timings"
    );
    Ok(Issue::Issued(Box::new(status::issued(
        plan,
        &certificates,
        sealed,
        generation,
        now,
    ))))
}

/// Says (once) that AWS is failing, then lets the error policy retry with its backoff.
async fn retry_aws(
    api: &Api<CredentialRequest>,
    request: &CredentialRequest,
    status: &CredentialRequestStatus,
) -> Result<Action, Error> {
    let unchanged = request.status.as_ref().is_some_and(|old| {
        old.conditions
            .iter()
            .any(|c| c.type_ == ISSUED && c.status == "Unknown" && c.reason == "AwsUnavailable")
    });
    if !unchanged {
        write_once(api, request, status).await?;
    }
    Err(Error::AwsUnavailable)
}

/// Writes the status only if the object is still the version decided on: a stale cache can never
/// make the operator issue twice. Returns false on a conflict.
async fn write_once(
    api: &Api<CredentialRequest>,
    request: &CredentialRequest,
    status: &CredentialRequestStatus,
) -> Result<bool, Error> {
    let version = request
        .metadata
        .resource_version
        .clone()
        .ok_or(Error::MissingMetadata("resourceVersion"))?;
    let patch = Patch::Merge(serde_json::json!({
        "metadata": { "resourceVersion": version },
        "status": status,
    }));
    let (name, params) = (request.name_any(), PatchParams::default());
    let write = api.patch_status(&name, &params, &patch);
    match tokio::time::timeout(STATUS_WRITE_TIMEOUT, write).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(kube::Error::Api(status))) if status.code == 409 => Ok(false),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Err(Error::StatusTimeout(STATUS_WRITE_TIMEOUT)),
    }
}

/// Deletes a decided request once it is of no use, or comes back then.
async fn clean_up(api: &Api<CredentialRequest>, request: &CredentialRequest) -> Result<Action, Error> {
    let created = request.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let Some(at) = status::delete_after(created, request.status.as_ref()) else {
        return Ok(Action::await_change());
    };
    let now = Timestamp::now();
    if at > now {
        return Ok(requeue_at(at, now));
    }
    match api.delete(&request.name_any(), &DeleteParams::default()).await {
        Ok(_) => {
            tracing::debug!(name = %request.name_any(), "deleted a spent CredentialRequest");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Action::await_change()),
        Err(err) => Err(err.into()),
    }
}

fn requeue_until(created: Option<Timestamp>, status: &CredentialRequestStatus) -> Action {
    status::delete_after(created, Some(status))
        .map_or_else(Action::await_change, |at| requeue_at(at, Timestamp::now()))
}

fn requeue_at(at: Timestamp, now: Timestamp) -> Action {
    let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
    Action::requeue(wait + Duration::from_secs(1))
}

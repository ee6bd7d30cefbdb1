//! CredentialRequest reconciliation: gather (the AccessRequest, read fresh, and its account) → core
//! plans → sign, AssumeRole, seal → core settles the status → one write → logbook Event → delete it
//! an hour after it stopped being useful. Nothing secret is logged: log lines and Events carry
//! serials and session names only.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{Api, Resource, ResourceExt, api::DeleteParams, runtime::controller::Action};
use passport_core::{
    account,
    credentials::{self, Inputs, Plan, Reason, Refusal, decide, seal, status as settle},
    ssh_ca::CaError,
    time::elapsed,
};
use passport_crds::{AccessRequest, CredentialRequest, credential_request::CredentialRequestStatus};
use rand_core::{OsRng, RngCore};

use super::{Context, Error};
use crate::{
    aws::{Fleet, ScopedSession},
    cluster::{events, status, windows_password},
};

pub async fn reconcile<F: Fleet>(
    request: Arc<CredentialRequest>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("CredentialRequest");
    ctx.reported(request.as_ref(), drive(&request, &ctx).await).await
}

async fn drive<F: Fleet>(request: &CredentialRequest, ctx: &Arc<Context<F>>) -> Result<Action, Error> {
    let namespace = request.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<CredentialRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    if settle::is_decided(request.status.as_ref()) {
        return clean_up(&api, request).await;
    }
    if request.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    // Read fresh, not from the cache: a request completed a moment ago must not get credentials.
    let requests: Api<AccessRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let access_request = requests.get_opt(&request.spec.access_request).await?;
    // The account as pinned at approval: the one the user was created through.
    let resolved = access_request
        .as_ref()
        .map(|r| account::resolve(r, &ctx.policies_in(&namespace), |name| ctx.account(name)));
    // No credentials through an account that is gone or closed to the namespace, pinned or not.
    let acting = match (&access_request, &resolved) {
        (Some(r), Some(Ok(resolved))) => account::acting(r, Some(resolved)),
        _ => None,
    };
    let problem = match &resolved {
        Some(Err(err)) => err.to_string(),
        _ => "the AccessRequest names no usable AwsAccount".to_owned(),
    };
    let account = acting.as_ref().ok_or(problem.as_str());
    let name = request.name_any();
    let inputs = Inputs {
        namespace: &namespace,
        name: &name,
        spec: &request.spec,
        access_request: access_request.as_ref(),
        account,
        serial: OsRng.next_u64(),
        now,
    };
    let generation = request.meta().generation;
    let (next, issued) = match credentials::plan(&inputs) {
        Err(refusal) => (settle::refused(&refusal, generation, now), None),
        Ok(plan) => match issue(ctx, request, access_request.as_ref(), &plan, now).await? {
            Issued::Status(status) => (*status, Some(plan)),
            Issued::Refused(refusal) => (settle::refused(&refusal, generation, now), None),
            Issued::Retrying(status) => {
                if let Some(status) = status {
                    status::write(&api, &name, request.meta().resource_version.as_deref(), &status).await?;
                }
                return Err(Error::AwsUnavailable);
            }
        },
    };
    // Only the version decided on is written: a stale cache can never make the operator issue twice.
    let version = request
        .meta()
        .resource_version
        .as_deref()
        .ok_or(Error::MissingMetadata("resourceVersion"))?;
    status::write(&api, &name, Some(version), &next).await?;
    record(ctx, request, access_request.as_ref(), issued.as_ref(), &next).await;
    let created = request.meta().creation_timestamp.as_ref().map(|t| t.0);
    Ok(requeue_until(settle::delete_after(created, Some(&next))))
}

enum Issued {
    Status(Box<CredentialRequestStatus>),
    Refused(Refusal),
    /// AWS failed; the status to write while retrying, if it changed.
    Retrying(Option<CredentialRequestStatus>),
}

/// Signs, obtains the scoped AWS session and seals every secret.
async fn issue<F: Fleet>(
    ctx: &Arc<Context<F>>,
    request: &CredentialRequest,
    access_request: Option<&AccessRequest>,
    plan: &Plan,
    now: Timestamp,
) -> Result<Issued, Error> {
    let generation = request.meta().generation;
    let signed = {
        let (ctx, plan, public_key) = (ctx.clone(), plan.clone(), request.spec.public_key.clone());
        // RSA signatures take milliseconds of CPU: off the async workers.
        tokio::task::spawn_blocking(move || {
            ctx.authority
                .ca
                .sign(&plan.certificate_request(&public_key, now, ctx.certificate_ttl))
        })
        .await
        .map_err(|err| Error::Internal(format!("the signing task failed: {err}")))?
    };
    let certificates = match signed {
        Ok(certificates) => certificates,
        // Expired between the check and the signature: a refusal like any other expiry.
        Err(err @ CaError::AccessRequestExpired { .. }) => {
            return Ok(Issued::Refused(Refusal {
                reason: Reason::Expired,
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
    let aws = match ctx.fleet.assume_scoped(&plan.account, session).await {
        Ok(aws) => aws,
        Err(err) => {
            let created = request.meta().creation_timestamp.as_ref().map_or(now, |t| t.0);
            let role = &plan.account.role_arn;
            if let Some(refusal) = decide::aws_unavailable(created, now, role, &err.to_string()) {
                return Ok(Issued::Refused(refusal));
            }
            let message = format!("waiting for an AWS session from {role}: {err}; retrying");
            let retrying = settle::retrying(
                request.status.as_ref(),
                "AwsUnavailable",
                message,
                generation,
                now,
            );
            return Ok(Issued::Retrying(retrying));
        }
    };
    let mut sealed = vec![seal::aws_session(
        &plan.recipient,
        &settle::aws_session(plan, &aws),
    )?];
    if !plan.windows_instances.is_empty() {
        let uid = access_request
            .and_then(|r| r.uid())
            .ok_or(Error::MissingMetadata("uid"))?;
        let password = windows_password::stored(ctx.client.clone(), &ctx.namespace, &uid)
            .await?
            .ok_or(Error::WindowsPasswordMissing)?;
        for instance_id in &plan.windows_instances {
            sealed.push(seal::windows_password(&plan.recipient, instance_id, &password)?);
        }
    }
    Ok(Issued::Status(Box::new(settle::issued(
        plan,
        &certificates,
        sealed,
        generation,
        now,
    ))))
}

/// Metrics, a log line and, for an issue, the logbook Event on the AccessRequest.
async fn record<F: Fleet>(
    ctx: &Context<F>,
    request: &CredentialRequest,
    access_request: Option<&AccessRequest>,
    issued: Option<&Plan>,
    status: &CredentialRequestStatus,
) {
    let name = request.name_any();
    let namespace = request.namespace().unwrap_or_default();
    let Some(plan) = issued else {
        let refusal =
            passport_crds::conditions::observe(&status.conditions, passport_crds::conditions::types::ISSUED);
        let reason = refusal.as_ref().map_or("", |c| c.reason);
        ctx.metrics
            .credential_requests
            .with_label_values(&["refused", reason])
            .inc();
        let message = refusal.as_ref().map_or("", |c| c.message);
        tracing::info!(namespace, name, reason, "refused credentials: {message}");
        return;
    };
    let valid_before = status.valid_before.as_ref().map_or(plan.expires_at, |t| t.0);
    ctx.metrics
        .credential_requests
        .with_label_values(&["issued", "Issued"])
        .inc();
    if let Some(created) = request.meta().creation_timestamp.as_ref() {
        ctx.metrics
            .credential_issuance
            .observe(elapsed(created.0, Timestamp::now()).as_secs_f64());
    }
    tracing::info!(
        namespace, name, serial = plan.serial, session = %plan.session.name, %valid_before,
        "issued credentials for {}", plan.username
    );
    if let Some(access_request) = access_request {
        let entry = settle::issued_event(
            plan,
            &format!("{namespace}/{name}"),
            &request.spec.requester,
            valid_before,
        );
        events::publish(&ctx.recorder, &access_request.object_ref(&()), &entry).await;
    }
}

/// Deletes a decided request once it is of no use, or comes back then.
async fn clean_up(api: &Api<CredentialRequest>, request: &CredentialRequest) -> Result<Action, Error> {
    let created = request.meta().creation_timestamp.as_ref().map(|t| t.0);
    let Some(at) = settle::delete_after(created, request.status.as_ref()) else {
        return Ok(Action::await_change());
    };
    if at > Timestamp::now() {
        return Ok(requeue_until(Some(at)));
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

fn requeue_until(at: Option<Timestamp>) -> Action {
    at.map_or_else(Action::await_change, |at| {
        Action::requeue(elapsed(Timestamp::now(), at) + Duration::from_secs(1))
    })
}

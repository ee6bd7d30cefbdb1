//! CredentialRequest reconciliation: gather (the AccessRequest, read fresh, and its account) → core
//! plans (checking the AccessRequest's status against its spec) → the AccessRequest's ledger admits
//! it (a certificate given again for the same key, a new issue within the rate limit, a wait for its
//! turn, or a refusal) → sign, AssumeRole, seal → the `credential_issued` entry appended to the
//! AccessRequest's logbook → one status write → logbook Event → delete it an hour after it stopped
//! being useful. Nothing secret is logged: log lines and Events carry serials and session names only.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::controller::Action,
};
use passport_core::{
    account,
    credentials::{
        self, Inputs, Plan, Reason, Refusal, decide,
        limit::{Admission, LIMITS, Remembered},
        seal, status as settle,
    },
    logbook::LogEvent,
    scripts::masked_username,
    ssh_ca::CaError,
    time::elapsed,
};
use passport_crds::{AccessRequest, CredentialRequest, credential_request::CredentialRequestStatus};
use rand_core::{OsRng, RngCore};

use super::{Context, Error};
use crate::{
    aws::{Fleet, ScopedSession},
    cluster::{status, windows_password},
};

/// How many times the logbook entry is tried against a record others keep changing.
const LOGBOOK_ATTEMPTS: usize = 10;

pub async fn reconcile<F: Fleet>(
    request: Arc<CredentialRequest>,
    ctx: Arc<Context<F>>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("CredentialRequest");
    ctx.reported(request.as_ref(), drive(&request, &ctx).await).await
}

/// What became of a CredentialRequest.
enum Outcome {
    Issued(Box<Plan>),
    Reused,
    Refused,
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
    let planned = credentials::plan(&inputs).and_then(|plan| {
        // The user is the one pinned for the requester: not one a forged status names.
        let ar = access_request
            .as_ref()
            .ok_or_else(|| refusal(Reason::RequestNotFound, "gone"))?;
        let pinned = masked_username(&ar.spec.requester, &ctx.authority.username_key);
        credentials::check_pinned_username(ar, &pinned)?;
        Ok(plan)
    });
    let plan = match planned {
        Ok(plan) => plan,
        Err(refusal) => {
            let next = settle::refused(&refusal, generation, now);
            return decided(
                ctx,
                &api,
                request,
                access_request.as_ref(),
                Outcome::Refused,
                &next,
            )
            .await;
        }
    };
    let access_request = access_request.ok_or(Error::MissingMetadata("AccessRequest"))?;
    let ledger = ctx.ledgers.of(&plan.request_uid);
    let mut ledger = ledger.lock().await;
    // Waiting for the ledger takes time under a burst: decide on the time it is now.
    let now = Timestamp::now();
    let id = request.uid().unwrap_or_else(|| name.clone());
    match ledger.admit(&LIMITS, &plan, &id, &request.spec.access_request, now) {
        Admission::Reuse(remembered) => {
            drop(ledger);
            let sealed = seal_secrets(ctx, &plan, &remembered.session).await?;
            let next = settle::reused(&plan, &remembered, sealed, generation, now);
            decided(ctx, &api, request, Some(&access_request), Outcome::Reused, &next).await
        }
        Admission::Refuse(refusal) => {
            drop(ledger);
            let next = settle::refused(&refusal, generation, now);
            decided(ctx, &api, request, Some(&access_request), Outcome::Refused, &next).await
        }
        Admission::Wait { until, message } => {
            drop(ledger);
            let current = request.status.as_ref();
            if let Some(next) = settle::retrying(current, settle::RATE_LIMITED, message, generation, now) {
                let version = request.meta().resource_version.as_deref();
                status::write(&api, &name, version, &next).await?;
                ctx.metrics
                    .credential_requests
                    .with_label_values(&["waiting", settle::RATE_LIMITED])
                    .inc();
            }
            // A little after its turn, spread so that those in line do not all come at once.
            let jitter = Duration::from_millis(100 + OsRng.next_u64() % 900);
            Ok(Action::requeue(elapsed(now, until) + jitter))
        }
        Admission::Issue => match issue(ctx, request, &plan, now).await? {
            Issued::Done(status, remembered) => {
                // On the record before anyone can use it; a failure here delivers nothing.
                let valid_before = status.valid_before.as_ref().map_or(plan.expires_at, |t| t.0);
                let entry = settle::issued_event(
                    &plan,
                    &format!("{namespace}/{name}"),
                    &request.spec.requester,
                    valid_before,
                );
                append_logbook(ctx, &access_request, &entry, &request.spec.requester).await?;
                // Given again to a retry of this request (should its write fail) and to others.
                ledger.remember(*remembered, now);
                drop(ledger);
                let outcome = Outcome::Issued(Box::new(plan));
                decided(ctx, &api, request, Some(&access_request), outcome, &status).await
            }
            Issued::Refused(refusal) => {
                drop(ledger);
                let next = settle::refused(&refusal, generation, now);
                decided(ctx, &api, request, Some(&access_request), Outcome::Refused, &next).await
            }
            Issued::Retrying(status) => {
                drop(ledger);
                if let Some(status) = status {
                    status::write(&api, &name, request.meta().resource_version.as_deref(), &status).await?;
                }
                Err(Error::AwsUnavailable)
            }
        },
    }
}

fn refusal(reason: Reason, message: &str) -> Refusal {
    Refusal {
        reason,
        message: message.to_owned(),
    }
}

/// Writes the decided status (only onto the version decided on: a stale cache can never make the
/// operator issue twice), records it, and comes back when it may be deleted.
async fn decided<F: Fleet>(
    ctx: &Arc<Context<F>>,
    api: &Api<CredentialRequest>,
    request: &CredentialRequest,
    access_request: Option<&AccessRequest>,
    outcome: Outcome,
    next: &CredentialRequestStatus,
) -> Result<Action, Error> {
    let version = request
        .meta()
        .resource_version
        .as_deref()
        .ok_or(Error::MissingMetadata("resourceVersion"))?;
    status::write(api, &request.name_any(), Some(version), next).await?;
    record(ctx, request, access_request, &outcome, next).await;
    let created = request.meta().creation_timestamp.as_ref().map(|t| t.0);
    Ok(requeue_until(settle::delete_after(created, Some(next))))
}

/// Appends `entry` by `actor` to the AccessRequest's `status.logbook` with a JSON patch that applies
/// only to the record it was computed from; read again and retried when the record moved on.
async fn append_logbook<F: Fleet>(
    ctx: &Context<F>,
    access_request: &AccessRequest,
    entry: &LogEvent,
    actor: &str,
) -> Result<(), Error> {
    let namespace = access_request
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let name = access_request.name_any();
    let uid = access_request.uid().ok_or(Error::MissingMetadata("uid"))?;
    let api: Api<AccessRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut current = access_request.clone();
    for attempt in 0..LOGBOOK_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            current = api.get(&name).await?;
            // It began to end meanwhile: nothing is logged, and nothing handed out.
            if current.phase() != passport_crds::Phase::Active {
                return Err(Error::Conflict);
            }
        }
        let version = current.resource_version().unwrap_or_default();
        let record = current.status.as_ref().and_then(|s| s.logbook.as_ref());
        let ops = settle::logbook_patch(record, &uid, &version, entry, actor, Timestamp::now());
        let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
            .map_err(|err| Error::Internal(err.to_string()))?;
        let (params, patch) = (PatchParams::default(), Patch::Json::<()>(patch));
        let write = api.patch_status(&name, &params, &patch);
        match tokio::time::timeout(status::WRITE_TIMEOUT, write).await {
            Ok(Ok(_)) => return Ok(()),
            // A failed `test` (422: the record moved on) or a racing write (409): read again.
            Ok(Err(kube::Error::Api(status))) if status.code == 409 || status.code == 422 => {
                tracing::debug!(%name, attempt, "logbook moved on: {}", status.message);
            }
            Ok(Err(err)) => return Err(err.into()),
            Err(_) => return Err(Error::StatusTimeout(status::WRITE_TIMEOUT)),
        }
    }
    Err(Error::Conflict)
}

enum Issued {
    /// The status, and what to remember for giving it again.
    Done(Box<CredentialRequestStatus>, Box<Remembered>),
    Refused(Refusal),
    /// AWS failed; the status to write while retrying, if it changed.
    Retrying(Option<CredentialRequestStatus>),
}

/// Signs, obtains the scoped AWS session and seals every secret.
async fn issue<F: Fleet>(
    ctx: &Arc<Context<F>>,
    request: &CredentialRequest,
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
    // The credentials may start only passport's own documents: they must be there first.
    let scoped = match ctx.fleet.ensure_session_documents(&plan.account).await {
        Ok(()) => ctx.fleet.assume_scoped(&plan.account, session).await,
        Err(err) => Err(err),
    };
    let aws = match scoped {
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
    let sealed = seal_secrets(ctx, plan, &aws).await?;
    let status = settle::issued(plan, &certificates, sealed, generation, now);
    let issued_for = format!(
        "{}/{}",
        request.namespace().unwrap_or_default(),
        request.name_any()
    );
    let remembered = Remembered::new(plan, certificates, aws, issued_for);
    Ok(Issued::Done(Box::new(status), Box::new(remembered)))
}

/// The AWS session and, per Windows target, its password, sealed to the request's key.
async fn seal_secrets<F: Fleet>(
    ctx: &Arc<Context<F>>,
    plan: &Plan,
    aws: &credentials::SessionCredentials,
) -> Result<Vec<passport_crds::credential_request::SealedSecret>, Error> {
    let mut sealed = vec![seal::aws_session(
        &plan.recipient,
        &settle::aws_session(plan, aws),
    )?];
    // Each instance made its own password (see cluster::windows_password).
    for instance_id in &plan.windows_instances {
        let password =
            windows_password::stored(ctx.client.clone(), &ctx.namespace, &plan.request_uid, instance_id)
                .await?
                .ok_or(Error::WindowsPasswordMissing)?;
        sealed.push(seal::windows_password(&plan.recipient, instance_id, &password)?);
    }
    Ok(sealed)
}

/// Metrics, a log line and, for an issue, the logbook Event on the AccessRequest.
async fn record<F: Fleet>(
    ctx: &Context<F>,
    request: &CredentialRequest,
    access_request: Option<&AccessRequest>,
    outcome: &Outcome,
    status: &CredentialRequestStatus,
) {
    let name = request.name_any();
    let namespace = request.namespace().unwrap_or_default();
    let plan = match outcome {
        Outcome::Issued(plan) => plan,
        Outcome::Reused => {
            ctx.metrics
                .credential_requests
                .with_label_values(&["issued", settle::REUSED])
                .inc();
            tracing::debug!(
                namespace,
                name,
                "gave a certificate issued before for the same key"
            );
            return;
        }
        Outcome::Refused => {
            let refusal = passport_crds::conditions::observe(
                &status.conditions,
                passport_crds::conditions::types::ISSUED,
            );
            let reason = refusal.as_ref().map_or("", |c| c.reason);
            ctx.metrics
                .credential_requests
                .with_label_values(&["refused", reason])
                .inc();
            let message = refusal.as_ref().map_or("", |c| c.message);
            tracing::info!(namespace, name, reason, "refused credentials: {message}");
            return;
        }
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
        ctx.logbook_events
            .publish(&access_request.object_ref(&()), &entry, None)
            .await;
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

//! AccessRequest reconciliation: gather (approval, account, what AWS says) → lifecycle step → send
//! the commands it asks for → write status and logbook → requeue at the next deadline.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    runtime::{controller::Action, finalizer, reflector::ObjectRef},
};
use passport_crds::{
    AccessPolicy, AccessRequest, AccessReview, Phase,
    access_request::{AccessRequestStatus, TargetState},
    duration::parse_go_duration,
};

use super::{Context, Error, FINALIZER, execute, in_namespace, write_status};
use crate::{
    approval,
    aws::{Account, Fleet},
    lifecycle::{self, AccountAccess, Approval, Inputs, Observations, apply_outcome},
    logbook,
    scripts::masked_username,
    secrets,
};

pub async fn reconcile<F: Fleet>(request: Arc<AccessRequest>, ctx: Arc<Context<F>>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("AccessRequest");
    let namespace = request.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<AccessRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, request, |event| async {
        match event {
            finalizer::Event::Apply(request) => drive(&request, false, &api, &ctx).await,
            finalizer::Event::Cleanup(request) => drive(&request, true, &api, &ctx).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)))
}

async fn drive<F: Fleet>(
    request: &AccessRequest,
    deleting: bool,
    api: &Api<AccessRequest>,
    ctx: &Context<F>,
) -> Result<Action, Error> {
    let now = Timestamp::now();
    let namespace = request.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let name = request.name_any();
    let status = request.status.clone().unwrap_or_default();
    let policies: Vec<AccessPolicy> = in_namespace(ctx.policies.state(), &namespace);
    let approval = match approval_question(request, &status) {
        Some(reviews_since) => {
            let reviews: Vec<AccessReview> = in_namespace(ctx.reviews.state(), &namespace);
            approval::evaluate(request, &policies, &reviews, reviews_since, now)
        }
        None => Approval::Approved { by: String::new() },
    };
    let (access, account) = resolve_account(ctx, request, &policies, &namespace);
    let username = masked_username(&request.spec.requester, &ctx.authority.username_key);
    let about_to_provision = status.phase == Phase::Pending
        && matches!(approval, Approval::Approved { .. })
        && !deleting
        && !request.spec.completed;
    let mut observations = match &account {
        Some(account) => observe(ctx, account, request, &status, about_to_provision).await,
        None => Observations::default(),
    };
    observations.still_granted = still_granted_elsewhere(ctx, request);

    let decision = lifecycle::step(Inputs {
        spec: &request.spec,
        status: &status,
        generation: request.metadata.generation,
        deleting,
        approval: &approval,
        account: &access,
        observations: &observations,
        username: &username,
        now,
    });
    let mut next = decision.status.clone();
    let request_key = format!("{namespace}/{name}");
    let target = execute::Target {
        request,
        request_key: &request_key,
        username: &username,
        account: account.as_ref(),
    };
    // Outcomes are recorded as they come: a command sent must be in status even if a later one fails.
    let mut failure = None;
    for action in &decision.actions {
        match execute::send(ctx, &target, action).await {
            Ok(outcome) => apply_outcome(&mut next, &outcome),
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }

    if request.status.as_ref() != Some(&next) {
        write_status(api, &name, request.metadata.resource_version.as_deref(), &next).await?;
    }
    if let Some(err) = failure {
        return Err(err);
    }
    for entry in &decision.events {
        logbook::publish(&ctx.recorder, request, entry).await;
    }
    if next.phase.is_terminal() && has_windows_target(&next) {
        let uid = request.metadata.uid.as_deref().unwrap_or_default();
        secrets::forget_windows_password(ctx.client.clone(), &ctx.namespace, uid).await?;
    }
    if deleting && !decision.release {
        return Err(Error::RevocationInProgress);
    }
    // Deadlines are relative to `now`, taken when this reconcile began; count the time it took.
    let elapsed = Duration::try_from(Timestamp::now().duration_since(now)).unwrap_or_default();
    let requeue = decision.requeue_after.map(|after| after.saturating_sub(elapsed));
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Whether the spec as it stands needs approving (a new request, or an extension), and if so since
/// when reviews count.
fn approval_question(request: &AccessRequest, status: &AccessRequestStatus) -> Option<Timestamp> {
    let created = request
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    match status.phase {
        Phase::Pending => Some(created),
        Phase::Provisioning | Phase::Active => {
            let approved = status
                .approved_duration
                .as_deref()
                .and_then(|d| parse_go_duration(d).ok());
            let extending =
                approved.is_some_and(|approved| approved < lifecycle::access_duration(&request.spec));
            let last = status
                .extended_at
                .as_ref()
                .or(status.approved_at.as_ref())
                .map_or(created, |t| t.0);
            extending.then_some(last)
        }
        _ => None,
    }
}

/// Asks AWS what the next step needs: which pending targets SSM manages, and how commands in flight are doing.
async fn observe<F: Fleet>(
    ctx: &Context<F>,
    account: &Account,
    request: &AccessRequest,
    status: &AccessRequestStatus,
    about_to_provision: bool,
) -> Observations {
    let mut observations = Observations::default();
    let provisioning = status.phase == Phase::Provisioning;
    let unknown: Vec<String> = if about_to_provision {
        request
            .spec
            .targets
            .iter()
            .map(|t| t.instance_id.clone())
            .collect()
    } else if provisioning {
        status
            .targets
            .iter()
            .filter(|t| t.state == TargetState::Pending && t.platform.is_none())
            .map(|t| t.instance_id.clone())
            .collect()
    } else {
        Vec::new()
    };
    if !unknown.is_empty() {
        match ctx.fleet.managed_instances(account, &unknown).await {
            Ok(managed) => observations.managed = managed,
            Err(err) => observations
                .errors
                .extend(unknown.iter().map(|id| (id.clone(), err.to_string()))),
        }
    }
    let in_flight = status.targets.iter().filter(|t| {
        matches!(t.state, TargetState::Provisioning | TargetState::Removing) && t.command_id.is_some()
    });
    for target in in_flight {
        let command_id = target.command_id.as_deref().unwrap_or_default();
        match ctx
            .fleet
            .invocation(account, command_id, &target.instance_id)
            .await
        {
            Ok(invocation) => {
                observations
                    .invocations
                    .insert(target.instance_id.clone(), invocation);
            }
            Err(err) => {
                observations
                    .errors
                    .insert(target.instance_id.clone(), err.to_string());
            }
        }
    }
    observations
}

/// The AwsAccount the request uses: `spec.account`, else a policy's `defaultAccount`.
pub(super) fn resolve_account<F>(
    ctx: &Context<F>,
    request: &AccessRequest,
    policies: &[AccessPolicy],
    namespace: &str,
) -> (AccountAccess, Option<Account>) {
    let default = || {
        let mut defaults: Vec<&AccessPolicy> = policies
            .iter()
            .filter(|p| p.spec.default_account.is_some())
            .collect();
        defaults.sort_by_key(|p| p.name_any());
        defaults.first().and_then(|p| p.spec.default_account.clone())
    };
    let unusable = |reason: &str, message: String| {
        (
            AccountAccess::Unusable {
                reason: reason.into(),
                message,
            },
            None,
        )
    };
    let pinned = request.status.as_ref().and_then(|s| s.account.clone());
    let Some(name) = pinned.or_else(|| request.spec.account.clone()).or_else(default) else {
        return unusable(
            "NoAccount",
            format!(
                "spec.account is not set and no AccessPolicy in namespace {namespace} has a defaultAccount; \
                 create a new AccessRequest with spec.account naming an AwsAccount"
            ),
        );
    };
    let Some(account) = ctx.accounts.get(&ObjectRef::new(&name)) else {
        return unusable(
            "AccountNotFound",
            format!(
                "AwsAccount {name:?} does not exist; create it (see deploy/examples/awsaccount.yaml) \
                 or create a new AccessRequest naming an existing account"
            ),
        );
    };
    if !account.spec.allows_namespace(namespace) {
        return unusable(
            "AccountNotAllowed",
            format!("AwsAccount {name:?} does not list namespace {namespace} in spec.allowedNamespaces"),
        );
    }
    (AccountAccess::Usable { name }, Some(Account::from(&account.spec)))
}

/// Instances where another live request of the same requester has the same user provisioned.
fn still_granted_elsewhere<F>(
    ctx: &Context<F>,
    request: &AccessRequest,
) -> std::collections::BTreeMap<String, String> {
    let live = |other: &AccessRequest| {
        other.metadata.uid != request.metadata.uid
            && other.spec.requester == request.spec.requester
            && other.metadata.deletion_timestamp.is_none()
            && !other.spec.completed
            && other.status.as_ref().is_some_and(|s| {
                matches!(s.phase, Phase::Provisioning | Phase::Active)
                    && s.expires_at.as_ref().is_none_or(|t| t.0 > Timestamp::now())
            })
    };
    let mut granted = std::collections::BTreeMap::new();
    for other in ctx.requests.state().iter().filter(|o| live(o)) {
        let key = format!("{}/{}", other.namespace().unwrap_or_default(), other.name_any());
        let targets = other.status.iter().flat_map(|s| &s.targets);
        for target in targets.filter(|t| matches!(t.state, TargetState::Ready | TargetState::Provisioning)) {
            granted
                .entry(target.instance_id.clone())
                .or_insert_with(|| key.clone());
        }
    }
    granted
}

fn has_windows_target(status: &AccessRequestStatus) -> bool {
    status
        .targets
        .iter()
        .any(|t| t.platform == Some(passport_crds::access_request::Platform::Windows))
}

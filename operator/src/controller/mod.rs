//! The controllers: kube-runtime `Controller`s for AccessRequests, AwsAccounts and CredentialRequests, sharing one
//! context (API client, AWS fleet, SSH CA, event recorder, metrics, and reflector caches of the kinds
//! a decision reads).

mod access_request;
mod aws_account;
mod credential_request;
mod execute;

use std::{future::Future, sync::Arc, time::Duration};

use futures::{StreamExt, future};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller, Predicate, WatchStreamExt,
        controller::Action,
        events::{Recorder, Reporter},
        finalizer, predicates,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use passport_crds::{AccessPolicy, AccessRequest, AccessReview, AwsAccount, CredentialRequest};

use crate::{
    aws::Fleet, ca_store::Authority, credentials::seal::SealError, metrics::Metrics, scripts::ScriptError,
    ssh_ca::CaError,
};

/// The finalizer that keeps an AccessRequest until everything it granted is revoked.
pub const FINALIZER: &str = "passport.dev/revoke";
const STATUS_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a reconciliation may use.
pub struct Context<F> {
    pub client: Client,
    /// The operator's own namespace: its CA Secret and per-request Secrets live here.
    pub namespace: String,
    pub fleet: F,
    pub authority: Authority,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub policies: Store<AccessPolicy>,
    pub reviews: Store<AccessReview>,
    pub accounts: Store<AwsAccount>,
    pub requests: Store<AccessRequest>,
    /// How long issued SSH certificates last (`--certificate-ttl`).
    pub certificate_ttl: Duration,
}

impl<F> std::fmt::Debug for Context<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    /// Not a failure: a deleted request keeps its finalizer until every target is cleaned up.
    #[error("revocation still in progress")]
    RevocationInProgress,
    #[error("cannot build the script: {0}")]
    Script(#[from] ScriptError),
    /// The object changed since it was read; the next reconcile decides on the fresh one.
    #[error("the object changed while it was reconciled; retrying on the current version")]
    Conflict,
    #[error("status write did not finish within {0:?}")]
    StatusTimeout(Duration),
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    #[error("cannot sign the certificate: {0}")]
    Sign(#[source] CaError),
    #[error("cannot seal a secret: {0}")]
    Seal(#[from] SealError),
    /// Not a failure of this reconcile: the status says AWS is failing, and it retries.
    #[error("AWS would not issue the session; retrying")]
    AwsUnavailable,
    #[error("the AccessRequest has Windows targets but no stored Windows password")]
    WindowsPasswordMissing,
    #[error("a blocking task failed: {0}")]
    Join(String),
}

impl Error {
    /// A stable label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
            Error::RevocationInProgress => "revocation_in_progress",
            Error::Conflict => "conflict",
            Error::Script(_) => "script",
            Error::StatusTimeout(_) => "status_timeout",
            Error::MissingMetadata(_) => "missing_metadata",
            Error::Sign(_) => "sign",
            Error::Seal(_) => "seal",
            Error::AwsUnavailable => "aws_unavailable",
            Error::WindowsPasswordMissing => "windows_password_missing",
            Error::Join(_) => "join",
        }
    }

    fn is_pending_revocation(&self) -> bool {
        match self {
            Error::RevocationInProgress => true,
            Error::Finalizer(inner) => {
                matches!(
                    inner.as_ref(),
                    finalizer::Error::CleanupFailed(Error::RevocationInProgress)
                )
            }
            _ => false,
        }
    }
}

/// Keeps a reflector cache of every `K` in the cluster, for decisions that read other kinds.
async fn reflect<K>(api: Api<K>, writer: reflector::store::Writer<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .for_each(|_| future::ready(()))
        .await;
}

/// Runs every controller until `shutdown` resolves.
pub async fn run<F: Fleet>(
    client: Client,
    namespace: String,
    fleet: F,
    authority: Authority,
    metrics: Metrics,
    certificate_ttl: Duration,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (policies, policy_writer) = reflector::store();
    let (reviews, review_writer) = reflector::store();
    let (accounts, account_writer) = reflector::store();
    tokio::spawn(reflect(Api::<AccessPolicy>::all(client.clone()), policy_writer));
    tokio::spawn(reflect(Api::<AccessReview>::all(client.clone()), review_writer));
    tokio::spawn(reflect(Api::<AwsAccount>::all(client.clone()), account_writer));
    // A decision on a half-filled cache (say, an AwsAccount not yet seen) could fail a request for good.
    let synced = futures::future::join3(
        policies.wait_until_ready(),
        reviews.wait_until_ready(),
        accounts.wait_until_ready(),
    );
    if synced.await.0.is_err() {
        tracing::error!("reflector stopped before its cache was ready");
        return;
    }

    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));

    // Our own status writes would retrigger reconciles; only spec, deletion and finalizer changes do.
    let (requests, request_writer) = reflector::store::<AccessRequest>();
    let request_changes = reflector::reflector(
        request_writer,
        watcher(Api::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(
        predicates::generation.combine(predicates::finalizers),
        Default::default(),
    );
    let reporter = Reporter {
        controller: "passport-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        namespace,
        fleet,
        authority,
        metrics,
        policies,
        reviews,
        accounts,
        requests: requests.clone(),
        certificate_ttl,
    });
    let by_namespace = requests.clone();
    let request_controller = Controller::for_stream(request_changes, requests)
        .watches(
            Api::<AccessReview>::all(client.clone()),
            watcher::Config::default(),
            |review| {
                let namespace = review.namespace()?;
                Some(ObjectRef::new(&review.spec.access_request).within(&namespace))
            },
        )
        .watches(
            Api::<AccessPolicy>::all(client.clone()),
            watcher::Config::default(),
            move |policy| {
                let namespace = policy.namespace();
                by_namespace
                    .state()
                    .into_iter()
                    .filter(|r| r.namespace() == namespace)
                    .map(|r| ObjectRef::from_obj(r.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            access_request::reconcile,
            error_policy::<AccessRequest, F>,
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    let account_controller =
        Controller::new(Api::<AwsAccount>::all(client.clone()), watcher::Config::default())
            .graceful_shutdown_on(shutdown.clone())
            .run(aws_account::reconcile, error_policy::<AwsAccount, F>, ctx.clone())
            .for_each(|_| future::ready(()));

    let credential_controller =
        Controller::new(Api::<CredentialRequest>::all(client), watcher::Config::default())
            .graceful_shutdown_on(shutdown)
            .run(
                credential_request::reconcile,
                error_policy::<CredentialRequest, F>,
                ctx,
            )
            .for_each(|_| future::ready(()));

    tokio::join!(request_controller, account_controller, credential_controller);
}

fn error_policy<K: Resource<DynamicType = ()>, F>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<Context<F>>,
) -> Action {
    let kind = K::kind(&());
    if error.is_pending_revocation() {
        return Action::requeue(Duration::from_secs(1));
    }
    if matches!(error, Error::Conflict) {
        ctx.metrics.failure(&kind, "conflict");
        return Action::requeue(Duration::from_millis(200));
    }
    ctx.metrics.failure(&kind, error.metric_label());
    tracing::warn!(%kind, name = %object.meta().name.as_deref().unwrap_or_default(), "reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

/// The objects of `namespace`, cloned out of a reflector cache.
fn in_namespace<K: Resource + Clone>(objects: Vec<Arc<K>>, namespace: &str) -> Vec<K> {
    objects
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .map(|o| (*o).clone())
        .collect()
}

/// Writes a status with a deadline, so a slow apiserver cannot stall a reconcile forever. With
/// `resource_version`, the write applies only to the object the decision was made on: a decision
/// from a stale cache is refused (409) instead of overwriting newer status.
async fn write_status<K>(
    api: &Api<K>,
    name: &str,
    resource_version: Option<&str>,
    status: &impl serde::Serialize,
) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut body = serde_json::json!({ "status": status });
    if let Some(version) = resource_version {
        body["metadata"] = serde_json::json!({ "resourceVersion": version });
    }
    let patch = kube::api::Patch::Merge(body);
    let params = kube::api::PatchParams::default();
    let write = api.patch_status(name, &params, &patch);
    match tokio::time::timeout(STATUS_WRITE_TIMEOUT, write).await {
        Ok(Err(kube::Error::Api(status))) if status.code == 409 => Err(Error::Conflict),
        Ok(result) => result.map(|_| ()).map_err(Error::from),
        Err(_) => Err(Error::StatusTimeout(STATUS_WRITE_TIMEOUT)),
    }
}
